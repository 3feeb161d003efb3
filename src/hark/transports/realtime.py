"""WebSocket /v1/realtime: the OpenAI Realtime protocol in front of a Conversation."""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import json
import logging
import time
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from hark.audio import AudioFormatError, decode_base64_pcm16
from hark.config import SecuritySettings
from hark.observability.metrics import Metrics
from hark.pipeline import events as ev
from hark.pipeline.conversation import Conversation, LLMStatus, new_id
from hark.pipeline.turns import TurnConfig
from hark.security import CLOSE_IDLE, CLOSE_SLOW_CONSUMER, AudioThrottle, IdleTimer, OutboundBudget, Verdict
from hark.state import SessionState, SessionStore, StoreUnavailable
from hark.state.resume import Checkpointer, issue, restore_history, resume, snapshot
from hark.transports import realtime_protocol as rp

log = logging.getLogger("hark.realtime")

SAMPLE_RATE = 24_000
MAX_APPEND_BYTES = 15 * 1024 * 1024
MAX_CONSECUTIVE_FAILURES = 3
VOICE = "hark"


class Outbox:
    """Server messages waiting for the socket, serialized, at most ``limit_bytes`` of them: JSON
    events as text, reply audio as JSON events or (``audio=binary``) raw PCM frames. Reply audio
    over the budget is dropped (oldest queued audio first makes room for control events); when
    control events alone exceed it, ``overflow`` is set and the session closes. Queued reply audio
    can also be dropped on barge-in."""

    def __init__(self, limit_bytes: int = 256 * 1024) -> None:
        self._items: collections.deque[tuple[str | None, str | bytes]] = collections.deque()
        self._ready = asyncio.Event()
        self._counter = 0
        self.budget = OutboundBudget(limit_bytes)
        self.overflow = asyncio.Event()

    def put(self, event: dict[str, Any], *, audio_of: str | None = None) -> None:
        self._counter += 1
        event["event_id"] = f"event_{self._counter}"
        self._queue(json.dumps(event, separators=(",", ":")), audio_of)

    def put_audio(self, pcm: bytes, *, audio_of: str) -> None:
        """Reply audio as one binary frame (no event, so no event_id)."""
        self._queue(pcm, audio_of)

    def _queue(self, message: str | bytes, audio_of: str | None) -> None:
        verdict = self.budget.offer(len(message), audio=audio_of is not None)
        if verdict is Verdict.DROP:
            return
        if verdict is Verdict.CLOSE:
            self.overflow.set()
            return
        self._items.append((audio_of, message))
        while self.budget.excess and self._evict_oldest_audio():
            pass
        self._ready.set()

    def _evict_oldest_audio(self) -> bool:
        for index, (response_id, message) in enumerate(self._items):
            if response_id is not None:
                del self._items[index]
                self.budget.discard(len(message), audio=True)
                return True
        return False

    def drop_audio(self, response_id: str) -> int:
        kept: collections.deque[tuple[str | None, str | bytes]] = collections.deque()
        for item in self._items:
            if item[0] == response_id:
                self.budget.sent(len(item[1]), audio=True)
            else:
                kept.append(item)
        dropped = len(self._items) - len(kept)
        self._items = kept
        return dropped

    @property
    def pending(self) -> int:
        return len(self._items)

    async def get(self) -> str | bytes:
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        audio_of, message = self._items.popleft()
        self.budget.sent(len(message), audio=audio_of is not None)
        return message


class RealtimeSession:
    """One WebSocket connection. Maps client events onto the conversation and conversation events
    onto server events; a bad event gets an ``error`` naming its event_id and the session goes on."""

    def __init__(
        self,
        websocket: WebSocket,
        conversation_factory: Any,
        llm_status: LLMStatus,
        model: str,
        *,
        store: SessionStore | None = None,
        resume_ttl_s: float = 300.0,
        metrics: Metrics | None = None,
        session_id: str | None = None,
        limits: SecuritySettings | None = None,
    ):
        self.ws = websocket
        self.metrics = metrics
        self.id = session_id or new_id("sess")
        limits = limits or SecuritySettings()
        self.throttle = AudioThrottle(limits.max_audio_speed, burst_s=2.0, sample_rate=SAMPLE_RATE)
        self.idle = IdleTimer(limits.idle_timeout_s, time.monotonic())
        self._store = store
        self._resume_ttl_s = resume_ttl_s
        self._events_seen = 0
        self.model = model
        self.llm_status = llm_status
        self.outbox = Outbox(limits.outbound_buffer_bytes)
        self._wire_error: rp.ProtocolError | None = None
        try:
            self.binary_audio = rp.audio_wire(websocket.query_params.get("audio")) == "binary"
        except rp.ProtocolError as exc:
            self.binary_audio, self._wire_error = False, exc
        self.conversation: Conversation = conversation_factory(self._on_event)
        self._config = self.conversation.config
        self._turn = TurnDetectionState()
        self._writing = False
        self._failures = 0
        self._closing: asyncio.Task[None] | None = None
        self._checkpointer = (
            Checkpointer(store, self.id, self._snapshot, on_error=self._store_failed)
            if store is not None
            else None
        )

    # -- lifecycle -----------------------------------------------------------------------

    async def run(self) -> None:
        self.outbox.put({"type": "session.created", "session": self.session_object()})
        self.outbox.put(
            {
                "type": "hark.llm_status",
                "mode": self.llm_status.mode,
                "message": self.llm_status.message,
                "setting": self.llm_status.setting,
            }
        )
        if self._wire_error is not None:
            self._error(self._wire_error)
        writer = asyncio.create_task(self._write())
        await self._offer_resume_token()
        reader = asyncio.create_task(self._read())
        idle = asyncio.create_task(self._watch_idle())
        overflow = asyncio.create_task(self.outbox.overflow.wait())
        try:
            done, _ = await asyncio.wait({reader, idle, overflow}, return_when=asyncio.FIRST_COMPLETED)
            if overflow in done:
                log.info("closing a session whose client is not reading", extra={"session": self.id})
                writer.cancel()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1.0):
                        await close_quietly(self.ws, CLOSE_SLOW_CONSUMER, "client too slow")
            elif idle in done:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1.0):
                        await close_quietly(self.ws, CLOSE_IDLE, "idle timeout")
        finally:
            # 1. Stop reading, and so taking audio.  2. Stop the conversation's work.  3. Save
            # what can be resumed.  4. Stop writing.
            for task in (reader, idle, overflow):
                task.cancel()
            await asyncio.gather(reader, idle, overflow, return_exceptions=True)
            await self.conversation.aclose()
            if self._checkpointer is not None:
                await self._checkpointer.flush()
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)

    async def _read(self) -> None:
        while True:
            try:
                message = await self.ws.receive()
            except WebSocketDisconnect:
                return
            if message["type"] == "websocket.disconnect":
                return
            self._events_seen += 1
            self.idle.touch(time.monotonic())
            text = message.get("text")
            try:
                if text is None:
                    # A binary frame is raw PCM16: input_audio_buffer.append without JSON and base64.
                    await self._append(rp.binary_pcm(message.get("bytes") or b"", max_bytes=MAX_APPEND_BYTES))
                else:
                    await self._handle(rp.parse_client_event(text))
            except rp.ProtocolError as exc:
                self._error(exc)

    async def _write(self) -> None:
        while True:
            message = await self.outbox.get()
            self._writing = True
            try:
                if isinstance(message, str):
                    await self.ws.send_text(message)
                else:
                    await self.ws.send_bytes(message)
            except (WebSocketDisconnect, RuntimeError):
                return
            finally:
                self._writing = False

    async def _watch_idle(self) -> None:
        """Returns once the client has sent nothing for idle_timeout_s while no reply is running."""
        while True:
            now = time.monotonic()
            if self.idle.expired(now):
                if self.conversation.idle:
                    log.info("closing an idle session", extra={"session": self.id})
                    return
                self.idle.touch(now)  # a reply is running: the client is listening
            await asyncio.sleep(self.idle.remaining(time.monotonic()) + 0.01)

    async def drain(self, deadline: float) -> None:
        """Server shutdown: let the turn in progress finish, then close with 1001."""
        # Polled: "idle" is derived from several tasks, and this runs once, at shutdown.
        while not self.conversation.idle and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        while (self.outbox.pending or self._writing) and time.monotonic() < deadline + 1.0:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        await close_quietly(self.ws, 1001, "server is restarting; reconnect")

    def _error(self, error: rp.ProtocolError) -> None:
        if self.metrics is not None:
            self.metrics.error(error.code)
        self.outbox.put(rp.error_event(error))

    # -- client events -------------------------------------------------------------------

    async def _handle(self, event: rp.ClientEvent) -> None:
        match event:
            case rp.InputAudioAppend():
                try:
                    pcm = decode_base64_pcm16(event.audio, max_bytes=MAX_APPEND_BYTES)
                except AudioFormatError as exc:
                    raise rp.ProtocolError(str(exc), event_id=event.event_id, param="audio") from None
                await self._append(pcm)
            case rp.SessionUpdate():
                self._update_session(event)
                self.outbox.put({"type": "session.updated", "session": self.session_object()})
                self._checkpoint()
            case rp.InputAudioCommit():
                try:
                    self.conversation.commit()
                except ValueError as exc:
                    raise rp.ProtocolError(
                        str(exc), code="input_audio_buffer_commit_empty", event_id=event.event_id
                    ) from None
            case rp.InputAudioClear():
                self.conversation.clear_input()
            case rp.ResponseCreate():
                if event.response is not None and event.response.instructions is not None:
                    self.conversation.instructions = event.response.instructions
                try:
                    self.conversation.create_response()
                except RuntimeError as exc:
                    raise rp.ProtocolError(
                        str(exc), code="conversation_already_has_active_response", event_id=event.event_id
                    ) from None
            case rp.ResponseCancel() | rp.OutputAudioClear():
                if not self.conversation.cancel_response() and isinstance(event, rp.ResponseCancel):
                    raise rp.ProtocolError(
                        "no response in progress", code="response_cancel_not_active", event_id=event.event_id
                    )
            case rp.ItemTruncate():
                try:
                    self.conversation.truncate(event.item_id, event.audio_end_ms)
                except KeyError:
                    raise rp.ProtocolError(
                        f"no assistant audio item {event.item_id[:64]!r}",
                        code="item_not_found",
                        event_id=event.event_id,
                        param="item_id",
                    ) from None
                except ValueError as exc:
                    raise rp.ProtocolError(str(exc), event_id=event.event_id, param="audio_end_ms") from None
                self._checkpoint()
            case rp.ItemCreate():
                self._create_item(event)
                self._checkpoint()
            case rp.Resume():
                await self._resume(event)

    async def _append(self, pcm: bytes) -> None:
        if not pcm:
            return
        # Faster than max_audio_speed × real time (after a 2 s burst): stop reading for a while,
        # so the client's own socket pushes back.
        pause = self.throttle.push(pcm, time.monotonic())
        if pause:
            await asyncio.sleep(pause)
        # Processed here, in the reader, rather than handed to a task through a queue: one task
        # switch less per frame, and a commit or clear that follows always finds this audio in.
        try:
            await self.conversation.push_audio(pcm)
        except Exception:
            log.exception("audio processing failed")
            raise rp.ProtocolError(
                "audio processing failed", type="server_error", code="server_error"
            ) from None

    def _create_item(self, event: rp.ItemCreate) -> None:
        item = event.item
        if item.role == "system":
            raise rp.ProtocolError(
                "system items are not supported; use session.instructions", event_id=event.event_id
            )
        item_id = item.id or new_id("item")
        text = " ".join(part.text for part in item.content)
        self.conversation.history.add(item_id, item.role, text)
        content_type = "input_text" if item.role == "user" else "output_text"
        wire_item = {
            "id": item_id,
            "object": "realtime.item",
            "type": "message",
            "status": "completed",
            "role": item.role,
            "content": [{"type": content_type, "text": text}],
        }
        self.outbox.put({"type": "conversation.item.added", "previous_item_id": None, "item": wire_item})
        self.outbox.put({"type": "conversation.item.done", "previous_item_id": None, "item": wire_item})

    def _update_session(self, event: rp.SessionUpdate) -> None:
        session = event.session
        if session.instructions is not None:
            self.conversation.instructions = session.instructions
        audio = session.audio
        if audio is None:
            return
        for direction, spec in (("input", audio.input), ("output", audio.output)):
            fmt = spec.format if spec is not None else None
            rate = fmt.rate if fmt is not None and fmt.rate is not None else SAMPLE_RATE
            if fmt is not None and (fmt.type != "audio/pcm" or rate != SAMPLE_RATE):
                raise rp.ProtocolError(
                    f"unsupported {direction} format {fmt.type} at {fmt.rate} Hz; "
                    "hark speaks audio/pcm at 24000 Hz",
                    code="unsupported_audio_format",
                    event_id=event.event_id,
                    param=f"session.audio.{direction}.format",
                )
        if audio.input is not None and "turn_detection" in audio.input.model_fields_set:
            self._apply_turn_detection(audio.input.turn_detection)

    def _apply_turn_detection(self, detection: rp.TurnDetection | None) -> None:
        self._turn = TurnDetectionState.from_wire(detection, self._config.turn)
        self.conversation.set_turn_detection(detection is not None)
        self.conversation.auto_respond = detection is None or detection.create_response
        self.conversation.interrupt = detection is None or detection.interrupt_response
        if detection is not None:
            self.conversation.listener.configure(self._turn.config, prefix_ms=self._turn.prefix_ms)

    # -- resume (hark's addition) --------------------------------------------------------

    def _snapshot(self) -> SessionState:
        wire = self.session_object()["audio"]["input"]["turn_detection"]
        return snapshot(
            self.conversation.history.entries(),
            instructions=self.conversation.instructions,
            turn_detection=wire,
        )

    def _checkpoint(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.request()

    def _store_failed(self, exc: StoreUnavailable) -> None:
        log.warning("session store unavailable", extra={"session": self.id, "operation": exc.operation})
        self._error(rp.ProtocolError(str(exc), code="session_store_unavailable", type="server_error"))

    async def _offer_resume_token(self) -> None:
        if self._store is None:
            return
        try:
            token = await issue(self._store, self.id, self._resume_ttl_s)
        except StoreUnavailable as exc:
            self._store_failed(exc)
            return
        self.outbox.put(
            {"type": "hark.resume_token", "token": token.token, "expires_at": int(token.expires_at)}
        )
        self._checkpoint()  # so even a session that ends before its first turn can be resumed

    async def _resume(self, event: rp.Resume) -> None:
        if self._store is None or self._checkpointer is None:
            raise rp.ProtocolError(
                "this server keeps no sessions to resume", code="resume_unavailable", event_id=event.event_id
            )
        if self._events_seen != 1:
            raise rp.ProtocolError(
                "hark.resume must be the first event", code="resume_not_first", event_id=event.event_id
            )
        try:
            resumed = await resume(self._store, event.token, new_session_id=self.id, ttl_s=self._resume_ttl_s)
        except StoreUnavailable as exc:
            raise rp.ProtocolError(
                str(exc), code="session_store_unavailable", type="server_error", event_id=event.event_id
            ) from None
        if resumed is None:
            raise rp.ProtocolError(
                "the resume token is unknown, used or expired; this is a new session",
                code="resume_token_invalid",
                event_id=event.event_id,
            )
        restore_history(resumed.state, self.conversation.history)
        self.conversation.instructions = resumed.state.instructions
        wire = resumed.state.turn_detection
        self._apply_turn_detection(rp.TurnDetection.model_validate(wire) if wire is not None else None)
        items = len(self.conversation.history.entries())
        self.outbox.put({"type": "session.updated", "session": self.session_object()})
        self.outbox.put(
            {"type": "hark.resumed", "previous_session_id": resumed.previous_session_id, "items": items}
        )
        token = resumed.token
        self.outbox.put(
            {"type": "hark.resume_token", "token": token.token, "expires_at": int(token.expires_at)}
        )
        log.info("session resumed", extra={"session": self.id, "items": items})

    def session_object(self) -> dict[str, Any]:
        detection = None
        if self.conversation.turn_detection:
            detection = {
                "type": "server_vad",
                "threshold": self._turn.config.threshold,
                "prefix_padding_ms": self._turn.prefix_ms,
                "silence_duration_ms": int(self._turn.config.end_silence_ms),
                "create_response": self.conversation.auto_respond,
                "interrupt_response": self.conversation.interrupt,
                "idle_timeout_ms": None,
            }
        pcm = {"type": "audio/pcm", "rate": SAMPLE_RATE}
        return {
            "type": "realtime",
            "object": "realtime.session",
            "id": self.id,
            "model": self.model,
            "output_modalities": ["audio"],
            "instructions": self.conversation.instructions or self._config.system_prompt,
            "audio": {
                "input": {
                    "format": pcm,
                    "transcription": None,
                    "noise_reduction": None,
                    "turn_detection": detection,
                },
                "output": {"format": pcm, "voice": VOICE, "speed": 1.0},
            },
            "tools": [],
            "tool_choice": "auto",
            "max_output_tokens": "inf",
        }

    # -- conversation events -------------------------------------------------------------

    def _on_event(self, event: ev.Event) -> None:
        if self.metrics is not None:
            self.metrics.observe(event)
        put = self.outbox.put
        match event:
            case ev.ResponseAudio(response_id, item_id, pcm) if self.binary_audio:
                self.outbox.put_audio(pcm, audio_of=response_id)
            case ev.ResponseAudio(response_id, item_id, pcm):
                put(
                    {
                        "type": "response.output_audio.delta",
                        "response_id": response_id,
                        "item_id": item_id,
                        "output_index": 0,
                        "content_index": 0,
                        "delta": base64.b64encode(pcm).decode("ascii"),
                    },
                    audio_of=response_id,
                )
            case ev.ResponseText(response_id, item_id, delta):
                put(
                    {
                        "type": "response.output_audio_transcript.delta",
                        **_part(response_id, item_id),
                        "delta": delta,
                    }
                )
            case ev.StateChanged(state):
                put({"type": "hark.state", "state": state.value})
            case ev.SpeechStarted(item_id, audio_start_ms):
                put(
                    {
                        "type": "input_audio_buffer.speech_started",
                        "audio_start_ms": audio_start_ms,
                        "item_id": item_id,
                    }
                )
            case ev.SpeechStopped(item_id, audio_end_ms):
                put(
                    {
                        "type": "input_audio_buffer.speech_stopped",
                        "audio_end_ms": audio_end_ms,
                        "item_id": item_id,
                    }
                )
            case ev.InputCommitted(item_id, previous):
                put(
                    {"type": "input_audio_buffer.committed", "item_id": item_id, "previous_item_id": previous}
                )
                user_item = {
                    "id": item_id,
                    "object": "realtime.item",
                    "type": "message",
                    "status": "completed",
                    "role": "user",
                    "content": [{"type": "input_audio", "transcript": None}],
                }
                put({"type": "conversation.item.added", "previous_item_id": previous, "item": user_item})
            case ev.InputCleared():
                put({"type": "input_audio_buffer.cleared"})
            case ev.TranscriptPartial(item_id, delta, text):
                put(
                    {
                        "type": "conversation.item.input_audio_transcription.delta",
                        "item_id": item_id,
                        "content_index": 0,
                        "delta": delta,
                        "transcript": text,
                    }
                )
            case ev.TranscriptFinal(item_id, text):
                self._checkpoint()
                put(
                    {
                        "type": "conversation.item.input_audio_transcription.completed",
                        "item_id": item_id,
                        "content_index": 0,
                        "transcript": text,
                        "usage": {"type": "duration", "seconds": 0},
                    }
                )
            case ev.TranscriptFailed(item_id, message, saturated):
                if self.metrics is not None:
                    self.metrics.error("transcription_failed")
                if not saturated:  # load is not a fault: it never closes the session
                    self._turn_failed("transcription")
                put(
                    {
                        "type": "conversation.item.input_audio_transcription.failed",
                        "item_id": item_id,
                        "content_index": 0,
                        "error": {"type": "server_error", "code": "transcription_failed", "message": message},
                    }
                )
            case ev.ResponseStarted(response_id, item_id, _mode):
                self._response_started(response_id, item_id)
            case ev.ResponseDone():
                self._response_done(event)
            case ev.OutputCleared(response_id, _item_id):
                # Audio still queued here is never sent; the client drops what it has buffered.
                self.outbox.drop_audio(response_id)
                put({"type": "output_audio_buffer.cleared", "response_id": response_id})
            case ev.ItemTruncated(item_id, audio_end_ms):
                put(
                    {
                        "type": "conversation.item.truncated",
                        "item_id": item_id,
                        "content_index": 0,
                        "audio_end_ms": audio_end_ms,
                    }
                )
            case ev.Latency():
                put(
                    {
                        "type": "hark.latency",
                        "response_id": event.response_id,
                        "end_of_turn_ms": event.end_of_turn_ms,
                        "stt_ms": event.stt_ms,
                        "llm_ttft_ms": event.llm_ttft_ms,
                        "tts_ttfb_ms": event.tts_ttfb_ms,
                        "voice_to_voice_ms": event.voice_to_voice_ms,
                    }
                )
            case ev.ConversationError(code, message, kind):
                self._error(rp.ProtocolError(message, code=code, type=kind))

    def _response_started(self, response_id: str, item_id: str) -> None:
        put = self.outbox.put
        put({"type": "response.created", "response": self._response_object(response_id, "in_progress", [])})
        item = _assistant_item(item_id, "in_progress", None)
        put(
            {
                "type": "response.output_item.added",
                "response_id": response_id,
                "output_index": 0,
                "item": item,
            }
        )
        put({"type": "conversation.item.added", "previous_item_id": None, "item": item})
        put(
            {
                "type": "response.content_part.added",
                **_part(response_id, item_id),
                "part": {"type": "audio", "transcript": ""},
            }
        )

    def _turn_failed(self, stage: str) -> None:
        """Engine failures in a row mean this session cannot be served: after more than
        MAX_CONSECUTIVE_FAILURES of them it is closed, with the reason, rather than left mute."""
        self._failures += 1
        if self._failures > MAX_CONSECUTIVE_FAILURES and self._closing is None:
            reason = f"{self._failures} turns in a row failed ({stage} engines unavailable)"
            self._error(rp.ProtocolError(reason, code="session_failed", type="server_error"))
            log.warning(
                "closing a session that keeps failing", extra={"session": self.id, "failures": self._failures}
            )
            self._closing = asyncio.create_task(self._close_after_flush(1011, "engines unavailable"))

    async def _close_after_flush(self, code: int, reason: str) -> None:
        while self.outbox.pending or self._writing:  # noqa: ASYNC110 - once, on the way out
            await asyncio.sleep(0.01)
        await close_quietly(self.ws, code, reason)

    def _response_done(self, event: ev.ResponseDone) -> None:
        self._checkpoint()
        if event.status == "failed" and not event.saturated:
            self._turn_failed("llm or tts")
        elif event.status == "completed":
            self._failures = 0
        put = self.outbox.put
        rid, iid = event.response_id, event.item_id
        put({"type": "response.output_audio.done", **_part(rid, iid)})
        put({"type": "response.output_audio_transcript.done", **_part(rid, iid), "transcript": event.text})
        put(
            {
                "type": "response.content_part.done",
                **_part(rid, iid),
                "part": {"type": "audio", "transcript": event.text},
            }
        )
        item = _assistant_item(iid, "completed" if event.status == "completed" else "incomplete", event.text)
        put({"type": "response.output_item.done", "response_id": rid, "output_index": 0, "item": item})
        put({"type": "conversation.item.done", "previous_item_id": None, "item": item})
        details: dict[str, Any] | None = None
        if event.status == "cancelled":
            details = {"type": "cancelled", "reason": event.reason or "client_cancelled"}
        elif event.status == "failed":
            details = {
                "type": "failed",
                "error": {"type": "server_error", "code": "engine_error", "message": event.reason},
            }
        response = self._response_object(rid, event.status, [item])
        response["status_details"] = details
        put({"type": "response.done", "response": response})

    def _response_object(self, response_id: str, status: str, output: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": response_id,
            "object": "realtime.response",
            "status": status,
            "status_details": None,
            "output": output,
            "conversation_id": self.id,
            "output_modalities": ["audio"],
            "max_output_tokens": "inf",
            "audio": {"output": {"format": {"type": "audio/pcm", "rate": SAMPLE_RATE}, "voice": VOICE}},
            "usage": None,
            "metadata": None,
        }


class TurnDetectionState:
    def __init__(self, config: TurnConfig | None = None, prefix_ms: int = 300) -> None:
        self.config = config or TurnConfig()
        self.prefix_ms = prefix_ms

    @classmethod
    def from_wire(cls, wire: rp.TurnDetection | None, base: TurnConfig) -> TurnDetectionState:
        if wire is None:
            return cls(base)
        config = TurnConfig(
            chunk_ms=base.chunk_ms,
            threshold=wire.threshold if wire.threshold is not None else base.threshold,
            neg_threshold=base.neg_threshold if wire.threshold is None else None,
            start_ms=base.start_ms,
            end_silence_ms=(
                float(wire.silence_duration_ms)
                if wire.silence_duration_ms is not None
                else base.end_silence_ms
            ),
            max_turn_ms=base.max_turn_ms,
        )
        return cls(config, wire.prefix_padding_ms if wire.prefix_padding_ms is not None else 300)


def _part(response_id: str, item_id: str) -> dict[str, Any]:
    return {"response_id": response_id, "item_id": item_id, "output_index": 0, "content_index": 0}


def _assistant_item(item_id: str, status: str, transcript: str | None) -> dict[str, Any]:
    content = [] if transcript is None else [{"type": "output_audio", "transcript": transcript}]
    return {
        "id": item_id,
        "object": "realtime.item",
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": content,
    }


async def close_quietly(websocket: WebSocket, code: int, reason: str) -> None:
    with contextlib.suppress(RuntimeError, WebSocketDisconnect):
        await websocket.close(code=code, reason=reason)
