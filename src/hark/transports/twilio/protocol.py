"""Twilio Media Streams' WebSocket messages (bidirectional, ``<Connect><Stream>``), as Twilio's
"Media Streams - WebSocket Messages" page defines them.

From Twilio: ``connected``, ``start``, ``media``, ``dtmf``, ``mark``, ``stop`` (JSON text frames,
an ``event`` field naming the kind). To Twilio: ``media`` (base64 μ-law 8 kHz, no file header),
``mark`` and ``clear``, each naming the ``streamSid``. Fields Twilio may add later are ignored.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

MAX_MESSAGE_CHARS = 256 * 1024
"""A 20 ms media message is ~300 characters; a start message with parameters a few hundred."""
MAX_PAYLOAD_BYTES = 64 * 1024
"""μ-law bytes in one inbound media message (8 s of audio; Twilio sends 20 ms)."""
MAX_PARAMETER_CHARS = 2048

ErrorCode = Literal[
    "malformed_json", "unknown_event", "invalid_message", "invalid_audio", "message_too_large"
]


class TwilioProtocolError(Exception):
    """A message from Twilio that cannot be used. ``code`` is stable; the message never quotes
    the payload (it may hold a caller's audio or parameters)."""

    def __init__(self, code: ErrorCode, reason: str) -> None:
        super().__init__(reason)
        self.code: ErrorCode = code
        self.reason = reason


class _Message(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)


class Connected(_Message):
    event: Literal["connected"]
    protocol: str | None = Field(None, max_length=64)
    version: str | None = Field(None, max_length=64)


class MediaFormat(_Message):
    encoding: str = Field("audio/x-mulaw", max_length=64)
    sample_rate: int = Field(8000, alias="sampleRate")
    channels: int = 1


class StartInfo(_Message):
    stream_sid: str = Field(alias="streamSid", min_length=1, max_length=128)
    call_sid: str = Field(alias="callSid", min_length=1, max_length=128)
    account_sid: str | None = Field(None, alias="accountSid", max_length=128)
    tracks: list[str] = Field(default_factory=list, max_length=4)
    custom_parameters: dict[str, Annotated[str, Field(max_length=MAX_PARAMETER_CHARS)]] = Field(
        default_factory=dict, alias="customParameters", max_length=32
    )
    media_format: MediaFormat = Field(default_factory=MediaFormat, alias="mediaFormat")


class Start(_Message):
    event: Literal["start"]
    start: StartInfo
    stream_sid: str | None = Field(None, alias="streamSid", max_length=128)


class MediaInfo(_Message):
    payload: str = Field(max_length=MAX_PAYLOAD_BYTES * 4 // 3 + 4)
    track: str | None = Field(None, max_length=32)
    chunk: str | None = Field(None, max_length=32)
    timestamp: str | None = Field(None, max_length=32)


class Media(_Message):
    event: Literal["media"]
    media: MediaInfo

    def audio(self) -> bytes:
        """The μ-law bytes. Raises TwilioProtocolError when the payload is not base64."""
        try:
            return base64.b64decode(self.media.payload, validate=True)
        except (binascii.Error, ValueError):
            raise TwilioProtocolError("invalid_audio", "media.payload is not valid base64") from None


class MarkInfo(_Message):
    name: str = Field(max_length=256)


class Mark(_Message):
    event: Literal["mark"]
    mark: MarkInfo


class DtmfInfo(_Message):
    digit: str = Field(pattern=r"^[0-9*#A-Da-d]$")
    track: str | None = Field(None, max_length=32)


class Dtmf(_Message):
    event: Literal["dtmf"]
    dtmf: DtmfInfo


class Stop(_Message):
    event: Literal["stop"]


Inbound = Annotated[Connected | Start | Media | Mark | Dtmf | Stop, Field(discriminator="event")]
_INBOUND: TypeAdapter[Connected | Start | Media | Mark | Dtmf | Stop] = TypeAdapter(Inbound)
EVENTS = ("connected", "start", "media", "mark", "dtmf", "stop")


def parse(text: str) -> Connected | Start | Media | Mark | Dtmf | Stop:
    """One message from Twilio. Raises TwilioProtocolError (never anything else)."""
    if len(text) > MAX_MESSAGE_CHARS:
        raise TwilioProtocolError("message_too_large", f"message over {MAX_MESSAGE_CHARS} characters")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        raise TwilioProtocolError("malformed_json", "message is not JSON") from None
    if not isinstance(data, dict):
        raise TwilioProtocolError("invalid_message", "message is not a JSON object")
    event = data.get("event")
    if event not in EVENTS:
        raise TwilioProtocolError("unknown_event", "unknown or missing 'event'")
    try:
        return _INBOUND.validate_python(data)
    except ValidationError as exc:
        where = ".".join(str(part) for part in exc.errors()[0]["loc"][1:])
        raise TwilioProtocolError("invalid_message", f"invalid {event} message at {where or 'top'}") from None


# -- to Twilio ------------------------------------------------------------------------------


class _Outbound(BaseModel):
    model_config = ConfigDict(populate_by_name=True, frozen=True)
    stream_sid: str = Field(alias="streamSid")

    def wire(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True)


class OutMediaInfo(BaseModel):
    payload: str


class OutMedia(_Outbound):
    event: Literal["media"] = "media"
    media: OutMediaInfo


class OutMark(_Outbound):
    event: Literal["mark"] = "mark"
    mark: MarkInfo


class Clear(_Outbound):
    event: Literal["clear"] = "clear"


def media(stream_sid: str, ulaw: bytes) -> dict[str, Any]:
    return OutMedia(
        stream_sid=stream_sid, media=OutMediaInfo(payload=base64.b64encode(ulaw).decode("ascii"))
    ).wire()


def mark(stream_sid: str, name: str) -> dict[str, Any]:
    return OutMark(stream_sid=stream_sid, mark=MarkInfo(name=name)).wire()


def clear(stream_sid: str) -> dict[str, Any]:
    return Clear(stream_sid=stream_sid).wire()
