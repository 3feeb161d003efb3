"""One meeting's state while it records and while it is processed after stop."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from hark.errors import HarkError
from hark.meetings.diarizer import Live, SegmentVoice
from hark.meetings.events import MeetingEvent
from hark.meetings.recording_writer import RecordingWriter
from hark.meetings.segmenter import Segmenter
from hark.security.limits import AudioThrottle

RATE = 16_000
"""The rate meetings are recorded and transcribed at."""

Emit = Callable[[MeetingEvent], None]
StopReason = Literal["client", "max_length", "storage_error", "engine_error", "disconnected", "shutdown"]


class MeetingRefused(HarkError):
    """A meeting cannot start; ``code`` is the wire error code."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


class MeetingBusy(HarkError):
    """The meeting is still recording or being processed."""


def new_meeting_id() -> str:
    return "mtg_" + uuid.uuid4().hex[:24]


@dataclass(slots=True)
class SegmentRecord:
    index: int
    start: float
    end: float
    text: str = ""
    voice: SegmentVoice | None = None
    speaker: str | None = None
    error: str | None = None


@dataclass(eq=False)
class Meeting:
    id: str
    started_at: float
    segmenter: Segmenter
    writer: RecordingWriter
    language: str | None
    speakers: int | None
    max_s: float
    emit: Emit | None
    owner: str = ""
    throttle: AudioThrottle | None = None
    """Paces the client's audio to ``security.max_audio_speed`` × real time."""
    status: Literal["recording", "processing"] = "recording"
    segments: dict[int, SegmentRecord] = field(default_factory=dict)
    jobs: set[asyncio.Future[Any]] = field(default_factory=set)
    live: Live = field(default_factory=lambda: Live(None))
    live_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    min_speakers: int | None = None
    max_speakers: int | None = None
    speaker_names: dict[str, str] = field(default_factory=dict)
    """Names the client gave speaker labels ({"S2": "Maria"})."""
    recording_ok: bool = True
    interim: asyncio.Future[Any] | None = None
    interim_index: int = -1
    interim_s: float = 0.0
    stopped_at: float | None = None
    stop_reason: StopReason | None = None

    @property
    def duration_s(self) -> float:
        return self.segmenter.position_s

    def send(self, event: MeetingEvent) -> None:
        if self.emit is not None:
            self.emit(event)

    def transcribed(self) -> list[SegmentRecord]:
        """The segments with text, in order."""
        return [r for _, r in sorted(self.segments.items()) if r.text]
