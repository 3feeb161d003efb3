"""What a meeting produces: transcript segments, summary, decisions and action items."""

from __future__ import annotations

from pydantic import BaseModel, Field


class TranscriptSegment(BaseModel):
    start: float = Field(ge=0.0)
    """Seconds from the start of the meeting."""
    end: float = Field(ge=0.0)
    text: str
    speaker: str | None = None
    """A label such as "S1"; None when unknown."""
    speaker_name: str | None = None
    """The name the client gave the label, if any."""
    overlap: bool = False
    """It sounded like two people at once; ``speaker`` is the louder or longer one."""


class ActionItem(BaseModel):
    task: str = Field(min_length=1)
    owner: str | None = None
    due: str | None = None
    """As spoken ("Friday", "next week", "2026-12-01"); not normalised."""


class MeetingSummary(BaseModel):
    """What the LLM must return (validated; repaired when invalid)."""

    summary: str = Field(min_length=1)
    decisions: list[str] = Field(default_factory=list)
    actions: list[ActionItem] = Field(default_factory=list)


class MeetingResult(BaseModel):
    meeting_id: str
    status: str = "completed"
    """"processing", "completed" or "failed"."""
    started_at: float
    """Unix time."""
    duration_s: float
    transcript: list[TranscriptSegment] = Field(default_factory=list)
    summary: str | None = None
    summary_error: str | None = None
    """Why there is no summary (no LLM configured, the LLM failed, ...)."""
    decisions: list[str] = Field(default_factory=list)
    actions: list[ActionItem] = Field(default_factory=list)
    diarization: str = "none"
    """How speakers were told apart: "campplus", "pyannote", "clustering", "single-speaker"."""
    diarization_error: str | None = None
    """Why diarisation fell back (pyannote or clustering failed); None when it ran as chosen."""
    error: str | None = None
    """Why processing failed, when ``status`` is "failed"."""
    speakers: list[str] = Field(default_factory=list)
    """The speaker labels in the transcript, in order of first appearance."""
    speaker_names: dict[str, str] = Field(default_factory=dict)
    """Names the client gave labels ({"S2": "Maria"}), as used in the summary and owners."""
