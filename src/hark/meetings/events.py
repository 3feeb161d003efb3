"""What a meeting tells its client while audio arrives, as typed events (like the pipeline's
``hark.pipeline.events``). The transport turns them into wire dicts with :func:`to_wire`, the
only place their JSON shape is written."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True, slots=True)
class PartialTranscript:
    """A segment's transcript: ``final`` once the segment ended, else a provisional one while
    someone is still speaking. ``speaker`` is the live clustering's tentative label."""

    TYPE: ClassVar[str] = "partial_transcript"
    meeting_id: str
    segment: int
    start: float
    end: float
    text: str
    speaker: str | None
    final: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", round(self.start, 2))
        object.__setattr__(self, "end", round(self.end, 2))


@dataclass(frozen=True, slots=True)
class SpeakerMove:
    segment: int
    speaker: str


@dataclass(frozen=True, slots=True)
class SpeakersUpdated:
    """The live clustering moved earlier segments to other speakers."""

    TYPE: ClassVar[str] = "speakers_updated"
    meeting_id: str
    segments: tuple[SpeakerMove, ...]


@dataclass(frozen=True, slots=True)
class MeetingError:
    """Something failed while recording (``code``: the wire error code); ``segment`` when it is
    one segment's transcription."""

    TYPE: ClassVar[str] = "error"
    code: str
    message: str
    kind: str = "server_error"
    segment: int | None = None


MeetingEvent = PartialTranscript | SpeakersUpdated | MeetingError


def to_wire(event: MeetingEvent) -> dict[str, Any]:
    if isinstance(event, MeetingError):
        error: dict[str, Any] = {"type": event.kind, "code": event.code, "message": event.message}
        if event.segment is not None:
            error["segment"] = event.segment
        return {"type": event.TYPE, "error": error}
    fields = dataclasses.asdict(event)
    return {"type": event.TYPE, **{k: list(v) if isinstance(v, tuple) else v for k, v in fields.items()}}
