"""WebSocket /v1/realtime: the OpenAI Realtime protocol in front of a Conversation.

The session is a conductor: the socket skeleton (``SocketLink``) reads and writes, the codec
(``RealtimeCodec``) turns text into client events and conversation events into wire events,
the conversation does the work, and ``ResumeHandshake`` is hark's resume addition. A bad client
event gets an ``error`` naming its event_id and the session goes on.

Chosen when connecting: ``?hark_events=1`` for hark's own ``hark.*`` events (default: OpenAI's
events only), ``?audio=binary`` for raw PCM reply frames, and the beta dialect with the header
``OpenAI-Beta: realtime=v1``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from starlette.websockets import WebSocket

from hark.audio import AudioFormatError, decode_base64_pcm16
from hark.config import SecuritySettings
from hark.engines.aec import EchoCanceller
from hark.observability.metrics import Metrics
from hark.pipeline import events as ev
from hark.pipeline.conversation import Conversation, LLMStatus, new_id
from hark.pipeline.errors import PipelineError
from hark.security import CLOSE_IDLE, AudioThrottle, IdleTimer
from hark.sessionstore import SessionState, SessionStore, StoreUnavailable
from hark.transports import realtime_protocol as rp
from hark.transports.outbox import Outbox
from hark.transports.realtime_beta import is_beta
from hark.transports.realtime_codec import Out, RealtimeCodec, SessionView
from hark.transports.realtime_resume import ResumeHandshake, state_of
from hark.transports.realtime_settings import SessionSettings, item_of, response_options
from hark.transports.socket import Message, SocketLink, close_quietly

__all__ = ["MAX_APPEND_BYTES", "Outbox", "RealtimeSession", "close_quietly"]

log = logging.getLogger("hark.realtime")

SAMPLE_RATE = rp.SAMPLE_RATE
MAX_APPEND_BYTES = 15 * 1024 * 1024
MAX_CONSECUTIVE_FAILURES = 3


def flag(value: str | None, name: str) -> bool:
    if value in (None, "", "0", "false"):
        return False
    if value in ("1", "true"):
        return True
    raise rp.ProtocolError(f"unknown {name} value {str(value)[:40]!r}; use {name}=1 or {name}=0", param=name)


class RealtimeSession:
    def __init__(
        self,
        websocket: WebSocket,
        conversation_factory: Callable[[Callable[[ev.Event], None]], Conversation],
        llm_status: LLMStatus,
        model: str,
        *,
        store: SessionStore | None = None,
        resume_ttl_s: float = 300.0,
        metrics: Metrics | None = None,
        session_id: str | None = None,
        limits: SecuritySettings | None = None,
        echo: EchoCanceller | None = None,
    ):
        self.ws = websocket
        self.echo = echo
        """Takes hark's own voice out of the client's audio (audio.echo_cancellation)."""
        self.metrics = metrics
        self.id = session_id or new_id("sess")
        limits = limits or SecuritySettings()
        self.throttle = AudioThrottle(limits.max_audio_speed, burst_s=2.0, sample_rate=SAMPLE_RATE)
        self.idle = IdleTimer(limits.idle_timeout_s, time.monotonic())
        self._events_seen = 0
        self.model = model
        self.llm_status = llm_status
        metrics_ = metrics
        self.outbox = Outbox(
            limits.outbound_buffer_bytes,
            on_drop=(lambda size: metrics_.audio_dropped("realtime", size)) if metrics_ is not None else None,
        )
        self.link = SocketLink(websocket, self.outbox)
        self._wire_errors: list[rp.ProtocolError] = []
        query = websocket.query_params
        self.codec = RealtimeCodec(
            conversation_id=self.id,
            dialect="beta" if is_beta(websocket.headers.get("openai-beta")) else "ga",
            hark_events=self._choice(lambda: flag(query.get("hark_events"), "hark_events"), False),
            binary_audio=self._choice(lambda: rp.audio_wire(query.get("audio")) == "binary", False),
        )
        self.conversation: Conversation = conversation_factory(self._on_event)
        self.settings = SessionSettings(self.conversation.config)
        self._failures = 0
        self._closing: asyncio.Task[None] | None = None
        self._resume = (
            ResumeHandshake(store, self.id, resume_ttl_s, self._state, self._store_failed)
            if store is not None
            else None
        )

    def _choice(self, read: Callable[[], bool], default: bool) -> bool:
        try:
            return read()
        except rp.ProtocolError as exc:
            self._wire_errors.append(exc)
            return default

    @property
    def binary_audio(self) -> bool:
        return self.codec.binary_audio

    # -- lifecycle -----------------------------------------------------------------------

    async def run(self) -> None:
        self._send(self.codec.session("session.created", self._view()))
        self._put(
            {
                "type": "hark.llm_status",
                "mode": self.llm_status.mode,
                "message": self.llm_status.message,
                "setting": self.llm_status.setting,
            }
        )
        for error in self._wire_errors:
            self._error(error)
        self.link.start_writing()
        await self._offer_resume_token()
        try:
            await self.link.serve(self._receive, self._watch_idle(), on_watcher=self._idle_close)
        finally:
            # 1. Reading, and so taking audio, has stopped.  2. Stop the conversation's work.
            # 3. Save what can be resumed.  4. Stop writing.
            await self.conversation.aclose()
            if self._resume is not None:
                await self._resume.checkpointer.flush()
            await self.link.stopped_writing()

    async def _idle_close(self, _watcher: int) -> None:
        await self.link.close(CLOSE_IDLE, "idle timeout", within_s=1.0)

    async def _receive(self, message: Message) -> None:
        self._events_seen += 1
        self.idle.touch(time.monotonic())
        text = message.get("text")
        try:
            if text is None:
                # A binary frame is raw PCM16: input_audio_buffer.append without JSON and base64.
                await self._append(rp.binary_pcm(message.get("bytes") or b"", max_bytes=MAX_APPEND_BYTES))
            else:
                await self._handle(self.codec.decode(text))
        except rp.ProtocolError as exc:
            self._error(exc)

    @property
    def at_rest(self) -> bool:
        """No turn in progress: what the idle timeout and the drain wait for."""
        return self.conversation.idle

    async def _watch_idle(self) -> None:
        """Returns once the client has sent nothing for idle_timeout_s while no reply is running."""
        while True:
            now = time.monotonic()
            if self.idle.expired(now):
                if self.at_rest:
                    log.info("closing an idle session", extra={"session": self.id})
                    return
                self.idle.touch(now)  # a reply is running: the client is listening
            await asyncio.sleep(self.idle.remaining(time.monotonic()) + 0.01)

    async def drain(self, deadline: float) -> None:
        """Server shutdown: let the turn in progress finish, then close with 1001."""
        # Polled: "idle" is derived from several tasks, and this runs once, at shutdown.
        while not self.at_rest and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        await self.link.flushed(deadline + 1.0)
        await close_quietly(self.ws, 1001, "server is restarting; reconnect")

    def _send(self, messages: list[Out]) -> None:
        for message, audio_of in messages:
            if isinstance(message, bytes):
                assert audio_of is not None
                self.outbox.put_audio(message, audio_of=audio_of)
            else:
                self.outbox.put(message, audio_of=audio_of)

    def _put(self, event: dict[str, Any]) -> None:
        self._send(self.codec.wire(event))

    def _error(self, error: rp.ProtocolError) -> None:
        if self.metrics is not None:
            self.metrics.error(error.code)
        self._send(self.codec.error(error))

    # -- client events -------------------------------------------------------------------

    async def _handle(self, event: rp.ClientEvent) -> None:
        try:
            await self._dispatch(event)
        except PipelineError as exc:
            raise rp.ProtocolError(
                exc.message, code=exc.code, event_id=event.event_id, param=exc.param
            ) from None

    async def _dispatch(self, event: rp.ClientEvent) -> None:
        conversation = self.conversation
        match event:
            case rp.InputAudioAppend():
                try:
                    pcm = decode_base64_pcm16(event.audio, max_bytes=MAX_APPEND_BYTES)
                except AudioFormatError as exc:
                    raise rp.ProtocolError(str(exc), event_id=event.event_id, param="audio") from None
                await self._append(pcm)
            case rp.SessionUpdate():
                self.settings.apply(event.session, conversation)
                self._send(self.codec.session("session.updated", self._view()))
                self._checkpoint()
            case rp.InputAudioCommit():
                conversation.commit()
            case rp.InputAudioClear():
                conversation.clear_input()
            case rp.ResponseCreate():
                conversation.create_response(response_options(event.response))
            case rp.ResponseCancel():
                conversation.cancel_response(strict=True)
            case rp.OutputAudioClear():
                conversation.cancel_response()
            case rp.ItemTruncate():
                conversation.truncate(event.item_id, event.audio_end_ms)
                self._checkpoint()
            case rp.ItemCreate():
                conversation.add_item(item_of(event.item), after=event.previous_item_id)
                self._checkpoint()
            case rp.ItemRetrieve():
                self._send(self.codec.retrieved(conversation.get_item(event.item_id)))
            case rp.ItemDelete():
                conversation.delete_item(event.item_id)
                self._checkpoint()
            case rp.Resume():
                await self._take_over(event)

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
            if self.echo is not None:
                pcm = await self.echo.heard(pcm)
            await self.conversation.push_audio(pcm)
        except Exception:
            log.exception("audio processing failed")
            raise rp.ProtocolError(
                "audio processing failed", type="server_error", code="server_error"
            ) from None

    def _view(self) -> SessionView:
        return self.settings.view(self.id, self.model, self.conversation)

    # -- resume (hark's addition) --------------------------------------------------------

    def _state(self) -> SessionState:
        return state_of(self.conversation, self.settings.turn_detection_wire(self.conversation))

    def _checkpoint(self) -> None:
        if self._resume is not None:
            self._resume.checkpointer.request()

    def _store_failed(self, exc: StoreUnavailable) -> None:
        log.warning("session store unavailable", extra={"session": self.id, "operation": exc.operation})
        self._error(rp.ProtocolError(str(exc), code="session_store_unavailable", type="server_error"))

    async def _offer_resume_token(self) -> None:
        if self._resume is None:
            return
        try:
            token = await self._resume.offer()
        except StoreUnavailable as exc:
            self._store_failed(exc)
            return
        self._put({"type": "hark.resume_token", "token": token.token, "expires_at": int(token.expires_at)})

    async def _take_over(self, event: rp.Resume) -> None:
        if self._resume is None:
            raise rp.ProtocolError(
                "this server keeps no sessions to resume", code="resume_unavailable", event_id=event.event_id
            )
        if self._events_seen != 1:
            raise rp.ProtocolError(
                "hark.resume must be the first event", code="resume_not_first", event_id=event.event_id
            )
        restored = await self._resume.take_over(event, self.conversation)
        wire = restored.turn_detection
        self.settings.apply_turn_detection(
            rp.TurnDetection.model_validate(wire) if wire is not None else None, self.conversation
        )
        self._send(self.codec.session("session.updated", self._view()))
        self._put(
            {
                "type": "hark.resumed",
                "previous_session_id": restored.previous_session_id,
                "items": restored.items,
            }
        )
        token = restored.token
        self._put({"type": "hark.resume_token", "token": token.token, "expires_at": int(token.expires_at)})

    # -- conversation events -------------------------------------------------------------

    def _on_event(self, event: ev.Event) -> None:
        if self.metrics is not None:
            self.metrics.observe(event)
        match event:
            case ev.TranscriptFinal():
                self._checkpoint()
            case ev.TranscriptFailed(saturated=saturated):
                if self.metrics is not None:
                    self.metrics.error("transcription_failed")
                if not saturated:  # load is not a fault: it never closes the session
                    self._turn_failed("transcription")
            case ev.ResponseDone():
                self._response_done(event)
            case ev.ResponseAudio(_response_id, _item_id, pcm) if self.echo is not None:
                self.echo.played(pcm)
            case ev.OutputCleared(response_id, _item_id) | ev.OutputPaused(response_id, _item_id):
                # Audio still queued here is never sent; the client drops what it has buffered
                # (a paused reply sends again, on resuming, what the listener had not heard).
                self.outbox.drop_audio(response_id)
                if self.echo is not None:
                    self.echo.clear()
        if isinstance(event, ev.ResponseAudio):
            self._send(self.codec.encode(event))  # the listener waits for it: queued at once
        else:
            self.outbox.put_later(lambda: self._send(self.codec.encode(event)))

    def _response_done(self, event: ev.ResponseDone) -> None:
        self._checkpoint()
        if event.status == "failed" and not event.saturated:
            self._turn_failed("llm or tts")
        elif event.status == "completed":
            self._failures = 0

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
        await self.link.flushed()
        await close_quietly(self.ws, code, reason)
