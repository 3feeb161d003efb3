"""The beta dialect of the Realtime protocol (``OpenAI-Beta: realtime=v1``, as the SDK's
``client.beta.realtime`` sends): pure rewrites between its events and the GA ones hark speaks
inside. Client events are rewritten into the GA shape before they are validated; server events
are built in the GA shape and renamed on the way out."""

from __future__ import annotations

from typing import Any

from hark.transports.realtime_protocol import SAMPLE_RATE

_FORMATS = {"pcm16": "audio/pcm", "g711_ulaw": "audio/pcmu", "g711_alaw": "audio/pcma"}
_BETA_FORMATS = {v: k for k, v in _FORMATS.items()}

_RENAMED = {
    "response.output_audio.delta": "response.audio.delta",
    "response.output_audio.done": "response.audio.done",
    "response.output_audio_transcript.delta": "response.audio_transcript.delta",
    "response.output_audio_transcript.done": "response.audio_transcript.done",
    "response.output_text.delta": "response.text.delta",
    "response.output_text.done": "response.text.done",
    "conversation.item.added": "conversation.item.created",
}
_DROPPED = frozenset({"conversation.item.done"})
"""GA events the beta protocol has no counterpart for."""
_CONTENT = {"output_audio": "audio", "output_text": "text"}


def is_beta(header: str | None) -> bool:
    """Whether an ``OpenAI-Beta`` header value asks for the beta realtime protocol."""
    return header is not None and "realtime=v1" in header.replace(" ", "").split(",")


# -- client events: beta → GA ------------------------------------------------------------------


def _format(value: Any) -> Any:
    if isinstance(value, str) and value in _FORMATS:
        return {"type": _FORMATS[value], "rate": SAMPLE_RATE}
    return value  # left for validation to refuse


def _modalities(value: Any) -> Any:
    if isinstance(value, list):
        return ["audio"] if "audio" in value else ["text"]
    return value


def client_to_ga(data: dict[str, Any]) -> dict[str, Any]:
    kind = data.get("type")
    if kind == "session.update" and isinstance(data.get("session"), dict):
        return {**data, "session": _session_to_ga(data["session"])}
    if kind == "response.create" and isinstance(data.get("response"), dict):
        response = dict(data["response"])
        if "modalities" in response:
            response["output_modalities"] = _modalities(response.pop("modalities"))
        for beta_only in ("voice", "output_audio_format", "temperature"):
            response.pop(beta_only, None)
        return {**data, "response": response}
    return data


def _session_to_ga(beta: dict[str, Any]) -> dict[str, Any]:
    session = {k: v for k, v in beta.items() if k not in _BETA_SESSION_FIELDS}
    session.setdefault("type", "realtime")
    audio_in: dict[str, Any] = {}
    audio_out: dict[str, Any] = {}
    if "input_audio_format" in beta:
        audio_in["format"] = _format(beta["input_audio_format"])
    if "turn_detection" in beta:
        audio_in["turn_detection"] = beta["turn_detection"]
    if "input_audio_transcription" in beta:
        audio_in["transcription"] = beta["input_audio_transcription"]
    if "output_audio_format" in beta:
        audio_out["format"] = _format(beta["output_audio_format"])
    if "voice" in beta:
        audio_out["voice"] = beta["voice"]
    if audio_in or audio_out:
        session["audio"] = {k: v for k, v in (("input", audio_in), ("output", audio_out)) if v}
    if "modalities" in beta:
        session["output_modalities"] = _modalities(beta["modalities"])
    if "max_response_output_tokens" in beta:
        session["max_output_tokens"] = beta["max_response_output_tokens"]
    return session


_BETA_SESSION_FIELDS = frozenset(
    {
        "modalities",
        "voice",
        "input_audio_format",
        "output_audio_format",
        "turn_detection",
        "input_audio_transcription",
        "max_response_output_tokens",
        "temperature",
    }
)


# -- server events: GA → beta ------------------------------------------------------------------


def server_to_beta(event: dict[str, Any]) -> dict[str, Any] | None:
    """The beta form of a GA server event; None when the beta protocol has no such event."""
    kind = event["type"]
    if kind in _DROPPED:
        return None
    out = {**event, "type": _RENAMED.get(kind, kind)}
    if isinstance(out.get("item"), dict):
        out["item"] = _item(out["item"])
    if kind in ("session.created", "session.updated"):
        out["session"] = _session(out["session"])
    if kind in ("response.created", "response.done"):
        out["response"] = _response(out["response"])
    return out


def _item(item: dict[str, Any]) -> dict[str, Any]:
    content = item.get("content")
    if not isinstance(content, list):
        return item
    return {**item, "content": [{**p, "type": _CONTENT.get(p.get("type"), p.get("type"))} for p in content]}


def _beta_modalities(ga: list[str]) -> list[str]:
    return ["audio", "text"] if "audio" in ga else ["text"]


def _session(ga: dict[str, Any]) -> dict[str, Any]:
    audio_in = ga["audio"]["input"]
    audio_out = ga["audio"]["output"]
    return {
        "id": ga["id"],
        "object": "realtime.session",
        "model": ga["model"],
        "modalities": _beta_modalities(ga["output_modalities"]),
        "instructions": ga["instructions"],
        "voice": audio_out["voice"],
        "input_audio_format": _BETA_FORMATS.get(audio_in["format"]["type"], "pcm16"),
        "output_audio_format": _BETA_FORMATS.get(audio_out["format"]["type"], "pcm16"),
        "input_audio_transcription": audio_in["transcription"],
        "turn_detection": audio_in["turn_detection"],
        "tools": ga["tools"],
        "tool_choice": ga["tool_choice"],
        "temperature": 0.8,
        "max_response_output_tokens": ga["max_output_tokens"],
    }


def _response(ga: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in ga.items() if k not in ("output_modalities", "audio")}
    out["modalities"] = _beta_modalities(ga["output_modalities"])
    out["voice"] = ga["audio"]["output"]["voice"]
    out["output_audio_format"] = "pcm16"
    out["output"] = [_item(i) for i in ga["output"]]
    return out
