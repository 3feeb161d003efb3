"""Meetings over the wire: ``WebSocket /v1/meetings/stream`` and ``/v1/meetings/{id}``.

The stream (see ``docs/meetings.md``): the client sends ``start`` (JSON), binary PCM16 mono
frames, then ``stop``; the server answers ``started``, ``partial_transcript`` events while audio
arrives, ``stopped``, and one ``final`` with the whole result. A bad message gets an ``error``
event and the connection goes on. After ``final`` the same connection may start another meeting.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from starlette.websockets import WebSocket

from hark.audio import PCM16Resampler
from hark.errors import EngineError
from hark.meetings.events import MeetingEvent, to_wire
from hark.meetings.models import MeetingResult
from hark.meetings.service import Meeting, MeetingBusy, MeetingRefused, MeetingService, StopReason
from hark.meetings.speaker_names import InvalidSpeakerNames
from hark.meetings.storage_errors import StorageError
from hark.pipeline.sentences import split_sentences
from hark.security.access import API_KEY, session_token
from hark.security.idle import hold_idle
from hark.security.limits import ByteGate
from hark.security.scope import owner_of
from hark.services import services_of
from hark.transports.meetings_protocol import (
    MeetingProtocolError,
    SpeakerNamesEvent,
    StartEvent,
    StopEvent,
    parse_event,
)
from hark.transports.outbox import Outbox
from hark.transports.socket import Message, SocketLink

log = logging.getLogger("hark.transports.meetings")

router = APIRouter()

MAX_FRAME_BYTES = 1024 * 1024
"""About 16 s of 16 kHz audio per binary frame; clients send 20-100 ms."""
MAX_QUEUED = 512
"""Frames and events waiting for processing before the socket stops being read (backpressure)."""
MAX_QUEUED_BYTES = 2 * 1024 * 1024
"""... and audio bytes (about a minute at 16 kHz): 512 frames of up to 1 MiB would be 512 MiB."""
SUMMARY_AUDIO_RATE = 24_000


_Command = (
    tuple[Literal["start"], StartEvent]
    | tuple[Literal["audio"], bytes]
    | tuple[Literal["stop"], StopEvent]
    | tuple[Literal["names"], SpeakerNamesEvent]
    | tuple[Literal["disconnect"], None]
)


class MeetingSession:
    """One WebSocket connection. The reader only parses; one worker applies start, audio and
    stop in the order they arrived, so a stop always comes after the audio sent before it."""

    def __init__(
        self, websocket: WebSocket, service: MeetingService, *, limit_bytes: int = 256 * 1024
    ) -> None:
        self.ws = websocket
        self.service = service
        self.owner = owner_of(websocket.scope)
        self.meeting: Meeting | None = None
        self.outbox = Outbox(limit_bytes, event_ids=False)
        self.link = SocketLink(websocket, self.outbox)
        self._commands: asyncio.Queue[_Command] = asyncio.Queue(maxsize=MAX_QUEUED)
        self._queued_audio = ByteGate(MAX_QUEUED_BYTES)
        self._delivery: asyncio.Task[None] | None = None
        self._connected = True
        self._warned_idle_audio = False

    async def run(self) -> None:
        self.link.start_writing()
        worker = asyncio.create_task(self._work())
        try:
            await self.link.serve(self._receive)
        finally:
            # 1. Audio already received still belongs to the meeting: the worker applies it,
            #    then finishes a meeting still recording (its result is stored; GET returns it).
            self._connected = False
            await self._commands.put(("disconnect", None))
            with contextlib.suppress(Exception):
                await worker
            # 2. Nothing more goes to this client; processing continues in the service.
            if self.meeting is not None:
                self.meeting.emit = None
            if self._delivery is not None:
                self._delivery.cancel()
            await asyncio.gather(*(t for t in [self._delivery] if t), return_exceptions=True)
            await self.link.stopped_writing()

    # -- socket --------------------------------------------------------------------------

    def send(self, event: dict[str, Any], *, audio_of: str | None = None) -> None:
        """Queue ``event`` in the bounded outbox; ``audio_of``: summary audio that a client too
        slow to read may lose (control events past the budget close the connection instead)."""
        if self._connected:
            self.outbox.put(event, audio_of=audio_of)

    def _emit(self, event: MeetingEvent) -> None:
        self.send(to_wire(event))

    async def _receive(self, message: Message) -> None:
        data = message.get("bytes")
        if data is not None:
            if len(data) > MAX_FRAME_BYTES:
                error = MeetingProtocolError(
                    f"audio frame larger than {MAX_FRAME_BYTES} bytes", code="frame_too_large"
                )
                self.send(error.event())
            elif len(data) % 2:
                error = MeetingProtocolError(
                    "PCM16 audio frames must have an even number of bytes; frame dropped",
                    code="invalid_audio",
                )
                self.send(error.event())
            elif data:
                await self._queued_audio.enter(len(data))
                await self._commands.put(("audio", data))
            return
        text = message.get("text")
        if text is None:
            return
        try:
            event = parse_event(text)
        except MeetingProtocolError as exc:
            self.send(exc.event())
            return
        if isinstance(event, StartEvent):
            await self._commands.put(("start", event))
        elif isinstance(event, SpeakerNamesEvent):
            await self._commands.put(("names", event))
        else:
            await self._commands.put(("stop", event))

    # -- commands ------------------------------------------------------------------------

    async def _work(self) -> None:
        while True:
            command = await self._commands.get()
            try:
                match command:
                    case ("disconnect", None):
                        if self.meeting is not None and self.meeting.status == "recording":
                            self.service.finish(self.meeting, "disconnected")
                        return
                    case ("start", StartEvent() as start):
                        await self._start(start)
                    case ("audio", bytes() as pcm):
                        await self._queued_audio.leave(len(pcm))
                        await self._audio(pcm)
                    case ("stop", StopEvent() as stop):
                        self._stop_requested(stop)
                    case ("names", SpeakerNamesEvent() as names):
                        self._name_speakers(names)
            except MeetingProtocolError as exc:
                self.send(exc.event())
            except Exception:
                log.exception("meeting command failed")
                self.send(
                    MeetingProtocolError(
                        "the server failed to handle that", code="server_error", type="server_error"
                    ).event()
                )

    async def _start(self, event: StartEvent) -> None:
        if self.meeting is not None:
            state = "recording" if self.meeting.status == "recording" else "being processed"
            raise MeetingProtocolError(
                f"meeting {self.meeting.id} is still {state}; send 'stop' and wait for 'final'",
                code="already_started",
                event_id=event.event_id,
            )
        try:
            meeting = await self.service.begin(
                sample_rate=event.sample_rate,
                language=event.language,
                speakers=event.speakers,
                max_minutes=event.max_minutes,
                emit=self._emit,
                owner=self.owner,
                min_speakers=event.min_speakers,
                max_speakers=event.max_speakers,
                speaker_names=event.speaker_names,
            )
        except InvalidSpeakerNames as exc:
            raise MeetingProtocolError(
                str(exc), code="invalid_value", param="speaker_names", event_id=event.event_id
            ) from None
        except MeetingRefused as exc:
            raise MeetingProtocolError(
                str(exc), code=exc.code, type="server_error", event_id=event.event_id
            ) from None
        self.meeting = meeting
        self._warned_idle_audio = False
        self.send(
            {
                "type": "started",
                "meeting_id": meeting.id,
                "sample_rate": event.sample_rate,
                "max_seconds": meeting.max_s,
                "diarization": self.service.diarizer.method,
                "summary": self.service.engines.llm is not None,
                "speak_summary": self.service.settings.meetings.speak_summary
                and self.service.engines.llm is not None,
                "event_id": event.event_id,
            }
        )

    async def _audio(self, pcm: bytes) -> None:
        meeting = self.meeting
        if meeting is None:
            if not self._warned_idle_audio:
                self._warned_idle_audio = True
                raise MeetingProtocolError(
                    "no meeting is recording; send {'type': 'start'} before audio "
                    "(further frames are dropped without an error until then)",
                    code="not_started",
                )
            return
        if meeting.status != "recording":
            return  # the tail of a stream that was already stopped
        with hold_idle(self.ws.scope):  # a client ahead of the audio-rate throttle is not idle
            reason = await self.service.feed(meeting, pcm)
        if reason is not None:
            self._stop(meeting, reason)

    def _name_speakers(self, event: SpeakerNamesEvent) -> None:
        meeting = self.meeting
        if meeting is None:
            raise MeetingProtocolError(
                "no meeting to name speakers in; send it after 'start' and before 'final'",
                code="not_started",
                event_id=event.event_id,
            )
        try:
            names = self.service.name_speakers(meeting, event.names)
        except InvalidSpeakerNames as exc:
            raise MeetingProtocolError(
                str(exc), code="invalid_value", param="names", event_id=event.event_id
            ) from None
        self.send(
            {"type": "speaker_names", "meeting_id": meeting.id, "names": names, "event_id": event.event_id}
        )

    def _stop_requested(self, event: StopEvent) -> None:
        meeting = self.meeting
        if meeting is None or meeting.status != "recording":
            raise MeetingProtocolError(
                "no meeting is recording" if meeting is None else "the meeting has already stopped",
                code="not_started",
                event_id=event.event_id,
            )
        self._stop(meeting, "client")

    def _stop(self, meeting: Meeting, reason: StopReason) -> None:
        if reason == "max_length":
            self.send(
                {
                    "type": "notice",
                    "code": "max_length_reached",
                    "message": f"the meeting reached its maximum length ({meeting.max_s / 60:g} min) and "
                    "was stopped; further audio is ignored",
                }
            )
        task = self.service.finish(meeting, reason)
        self.send(
            {
                "type": "stopped",
                "meeting_id": meeting.id,
                "reason": reason,
                "duration_s": round(meeting.duration_s, 2),
            }
        )
        self._delivery = asyncio.create_task(self._deliver(meeting, task))

    async def _deliver(self, meeting: Meeting, task: asyncio.Task[MeetingResult]) -> None:
        try:
            with hold_idle(self.ws.scope):  # nothing to send until final: not idle
                result = await asyncio.shield(task)
        except Exception:
            log.exception("meeting processing failed", extra={"meeting": meeting.id})
            self.send(
                MeetingProtocolError(
                    f"meeting {meeting.id} could not be processed",
                    code="processing_failed",
                    type="server_error",
                ).event()
            )
            self.meeting = None
            return
        self.send({"type": "final", **result.model_dump(mode="json")})
        self.meeting = None
        if self.service.settings.meetings.speak_summary and result.summary and self._connected:
            await self._speak(result.meeting_id, result.summary)

    async def _speak(self, meeting_id: str, text: str) -> None:
        """The summary read aloud through the TTS chain: ``summary_audio.delta`` events (PCM16
        mono, base64, 24 kHz), then ``summary_audio.done``."""
        tts = self.service.engines.tts
        resampler = PCM16Resampler(tts.sample_rate, SUMMARY_AUDIO_RATE)
        base = {"meeting_id": meeting_id, "sample_rate": SUMMARY_AUDIO_RATE}
        try:
            for sentence in split_sentences(text):
                async for pcm in tts.synthesize(sentence):
                    if out := resampler.process(pcm):
                        self.send(
                            {"type": "summary_audio.delta", **base, "audio": _b64(out)}, audio_of=meeting_id
                        )
            if tail := resampler.process(b"", last=True):
                self.send({"type": "summary_audio.delta", **base, "audio": _b64(tail)}, audio_of=meeting_id)
        except EngineError as exc:
            log.warning("the summary could not be spoken", extra={"meeting": meeting_id, "error": str(exc)})
            self.send(
                MeetingProtocolError(
                    f"the summary could not be spoken: {exc}", code="tts_failed", type="server_error"
                ).event()
            )
            return
        self.send({"type": "summary_audio.done", **base})


def _b64(pcm: bytes) -> str:
    return base64.b64encode(pcm).decode("ascii")


def _service(request: Request | WebSocket) -> MeetingService:
    return services_of(request).meetings


def _error(status: int, message: str, code: str, type: str = "invalid_request_error") -> JSONResponse:
    body = {"error": {"message": message, "type": type, "param": None, "code": code}}
    return JSONResponse(body, status_code=status)


@router.websocket("/v1/meetings/stream", dependencies=[Depends(session_token("meetings"))])
async def meeting_stream(websocket: WebSocket) -> None:
    await websocket.accept()
    service = _service(websocket)
    session = MeetingSession(websocket, service, limit_bytes=service.settings.security.outbound_buffer_bytes)
    await session.run()


@router.get("/v1/meetings/{meeting_id}", dependencies=[API_KEY])
async def get_meeting(meeting_id: str, request: Request) -> JSONResponse:
    """The result (200); ``{"status": "recording" | "processing"}`` (202) while it is not ready."""
    service = _service(request)
    owner = owner_of(request.scope)
    status = service.status(meeting_id, owner)
    if status is not None:
        return JSONResponse({"meeting_id": meeting_id, "status": status}, status_code=202)
    try:
        result = await service.load(meeting_id, owner)
    except StorageError as exc:
        log.error("a stored meeting could not be read", extra={"error": type(exc).__name__})
        return _error(500, f"the stored meeting cannot be read: {exc}", "storage_error", "server_error")
    if result is None:
        return _error(404, f"no meeting {meeting_id[:80]!r}", "meeting_not_found")
    return JSONResponse(result)


@router.delete("/v1/meetings/{meeting_id}", dependencies=[API_KEY])
async def delete_meeting(meeting_id: str, request: Request) -> JSONResponse:
    """Removes the recording and the result."""
    service = _service(request)
    try:
        deleted = await service.delete(meeting_id, owner_of(request.scope))
    except MeetingBusy as exc:
        return _error(409, f"{exc}; delete it after 'final'", "meeting_in_progress")
    except (OSError, StorageError) as exc:
        return _error(500, f"the meeting could not be deleted: {exc}", "storage_error", "server_error")
    if not deleted:
        return _error(404, f"no meeting {meeting_id[:80]!r}", "meeting_not_found")
    return JSONResponse({"meeting_id": meeting_id, "deleted": True})
