"""The meeting stream's client events (``start``, ``speaker_names``, ``stop``) and their errors,
socket-free: text in, a validated event or a MeetingProtocolError out (see docs/meetings.md)."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

MAX_EVENT_CHARS = 64 * 1024


class StartEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["start"]
    sample_rate: int = Field(16_000, ge=8_000, le=48_000)
    language: str | None = Field(None, min_length=2, max_length=16, pattern=r"^[A-Za-z-]+$")
    """Spoken language for transcription; default: ``stt.language``."""
    speakers: int | None = Field(None, ge=1, le=20)
    """How many people speak, when known (otherwise diarisation decides)."""
    min_speakers: int | None = Field(None, ge=1, le=20)
    max_speakers: int | None = Field(None, ge=1, le=20)
    """Bounds for the number of speakers diarisation estimates."""
    speaker_names: dict[str, str] | None = None
    """Names for speaker labels, e.g. {"S1": "Ana"}; more can follow in ``speaker_names`` events."""
    max_minutes: float | None = Field(None, gt=0.0)
    """A shorter limit than ``meetings.max_minutes`` (a longer one is capped to it)."""
    event_id: str | None = Field(None, max_length=512)

    @model_validator(mode="after")
    def _bounds(self) -> StartEvent:
        if self.min_speakers and self.max_speakers and self.min_speakers > self.max_speakers:
            raise ValueError("min_speakers is above max_speakers")
        return self


class SpeakerNamesEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["speaker_names"]
    names: dict[str, str]
    """{"S2": "Maria"}: used by the summary and action owners, and in the final transcript."""
    event_id: str | None = Field(None, max_length=512)


class StopEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["stop"]
    event_id: str | None = Field(None, max_length=512)


class MeetingProtocolError(Exception):
    def __init__(
        self,
        message: str,
        *,
        code: str,
        type: str = "invalid_request_error",
        param: str | None = None,
        event_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message, self.code, self.type, self.param, self.event_id = message, code, type, param, event_id

    def event(self) -> dict[str, Any]:
        return {
            "type": "error",
            "error": {
                "type": self.type,
                "code": self.code,
                "message": self.message,
                "param": self.param,
                "event_id": self.event_id,
            },
        }


def parse_event(text: str) -> StartEvent | StopEvent | SpeakerNamesEvent:
    if len(text) > MAX_EVENT_CHARS:
        raise MeetingProtocolError(f"event larger than {MAX_EVENT_CHARS} characters", code="event_too_large")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        raise MeetingProtocolError("event is not valid JSON", code="invalid_json") from None
    if not isinstance(data, dict):
        raise MeetingProtocolError("event must be a JSON object", code="invalid_json")
    event_id = data.get("event_id") if isinstance(data.get("event_id"), str) else None
    kind = data.get("type")
    if not isinstance(kind, str):
        raise MeetingProtocolError(
            "event has no string 'type'", code="missing_required_parameter", param="type", event_id=event_id
        )
    model: type[StartEvent | StopEvent | SpeakerNamesEvent]
    if kind == "start":
        model = StartEvent
    elif kind == "stop":
        model = StopEvent
    elif kind == "speaker_names":
        model = SpeakerNamesEvent
    else:
        raise MeetingProtocolError(
            f"unsupported event type {kind[:80]!r}; send 'start', audio frames, then 'stop' "
            "(and 'speaker_names' at any time before 'final')",
            code="unknown_event_type",
            param="type",
            event_id=event_id,
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(p) for p in first["loc"]) or None
        message = "unknown option" if first["type"] == "extra_forbidden" else first["msg"]
        raise MeetingProtocolError(
            f"invalid {kind}: {param or 'event'}: {message}",
            code="invalid_value",
            param=param,
            event_id=event_id,
        ) from None
