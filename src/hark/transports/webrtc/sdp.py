"""The SDP edge's pure part: which bodies are offers, and the errors, in OpenAI's error body."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from fastapi.responses import JSONResponse

SDP = "application/sdp"
MULTIPART = "multipart/form-data"
MAX_OFFER_BYTES = 64 * 1024
"""A browser's offer is 3-8 KB; anything far bigger is not one."""
_OPUS = re.compile(r"^a=rtpmap:\d+ opus/48000(/\d)?$", re.IGNORECASE)
"""The codec a call speaks both ways: every browser and WebRTC stack offers it."""


class CallError(Exception):
    """A call refused before it started: the HTTP status and OpenAI's error code."""

    def __init__(self, status: int, message: str, code: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param

    def response(self) -> JSONResponse:
        kind = "invalid_request_error" if self.status < 500 else "server_error"
        body = {"error": {"message": self.message, "type": kind, "code": self.code, "param": self.param}}
        headers = {"WWW-Authenticate": "Bearer"} if self.status == 401 else None
        if self.status in (429, 503):
            headers = {"Retry-After": "1"}
        return JSONResponse(body, status_code=self.status, headers=headers)


@dataclass(frozen=True, slots=True)
class Offer:
    sdp: str
    session: dict[str, Any] | None
    """The ``session`` part of a multipart offer (a session.update's ``session``)."""


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def check_offer(text: str) -> str:
    """The offer's text, or CallError 400 when it is not an SDP offer with an audio section."""
    if len(text.encode()) > MAX_OFFER_BYTES:
        raise CallError(400, "the SDP offer is too large", "invalid_offer", param="sdp")
    lines = [line.strip() for line in text.replace("\r\n", "\n").split("\n") if line.strip()]
    if not lines or lines[0] != "v=0":
        raise CallError(
            400, "the body is not an SDP offer (it must begin with v=0)", "invalid_offer", param="sdp"
        )
    if not any(line.startswith("m=audio ") for line in lines):
        raise CallError(400, "the SDP offer has no audio section (m=audio)", "invalid_offer", param="sdp")
    if not any(line.startswith("a=fingerprint:") for line in lines):
        raise CallError(400, "the SDP offer has no DTLS fingerprint", "invalid_offer", param="sdp")
    if not any(_OPUS.match(line) for line in lines):
        raise CallError(
            400,
            "the SDP offer's audio has no Opus codec (opus/48000); hark's calls speak Opus only",
            "unsupported_codec",
            param="sdp",
        )
    return "\r\n".join(lines) + "\r\n"


def session_part(raw: str | None) -> dict[str, Any] | None:
    if raw is None or not raw.strip():
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        raise CallError(400, "the session part is not JSON", "invalid_session", param="session") from None
    if not isinstance(value, dict):
        raise CallError(400, "the session part must be a JSON object", "invalid_session", param="session")
    return value


def unsupported(content_type: str | None) -> CallError:
    shown = media_type(content_type)[:60] or "none"
    return CallError(
        415,
        f"Content-Type {shown!r} is not supported; send application/sdp or multipart/form-data "
        "with sdp and session parts",
        "unsupported_content_type",
    )
