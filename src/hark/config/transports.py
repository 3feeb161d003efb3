"""Transports beyond the WebSocket API: Wyoming (Home Assistant), Twilio phone calls, WebRTC."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator

from hark.config.base import Section, checked_url
from hark.errors import ConfigError


class WyomingSettings(Section):
    """The Wyoming server for Home Assistant (docs/wyoming.md). The protocol carries no
    credentials, so beyond loopback hark serves only the addresses in ``allowed_clients``."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(10700, ge=1, le=65535)
    allowed_clients: list[str] = Field(default_factory=list, max_length=256)
    """Client addresses or networks (``192.168.1.20``, ``10.0.0.0/24``) that may connect; required
    when ``host`` is not loopback. Empty on loopback: local clients only."""
    zeroconf: bool = False
    """Announce ``_wyoming._tcp.local.`` so Home Assistant discovers hark (needs ``hark[zeroconf]``)."""
    zeroconf_name: str | None = Field(None, max_length=63)
    max_connections: int = Field(16, ge=1, le=10_000)
    max_event_bytes: int = Field(1024 * 1024, ge=4096, le=64 * 1024 * 1024)
    """Largest header line, data or payload of one event; a bigger one closes the connection."""
    max_audio_s: float = Field(60.0, gt=0.0, le=3600.0)
    """Longest audio accepted for one transcription."""
    max_text_chars: int = Field(4096, ge=1, le=1_000_000)
    """Longest text accepted for one synthesis (streamed or not) or one handled transcript."""
    idle_timeout_s: float = Field(60.0, gt=0.0, le=86_400.0)
    """A connection that sends nothing for this long is closed."""

    @field_validator("allowed_clients")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        import ipaddress

        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"{entry[:64]!r} is not an IP address or network") from None
        return value


class TwilioSettings(Section):
    """Phone calls over Twilio Media Streams (docs/telephony.md)."""

    enabled: bool = False
    """Serve ``POST /twilio/voice`` (the incoming-call webhook, answered with TwiML that connects
    the call to ``/twilio/stream``) and that WebSocket."""
    auth_token: SecretStr | None = None
    """The Twilio account's auth token (``HARK_TWILIO_AUTH_TOKEN``): webhooks without its
    ``X-Twilio-Signature`` are refused. Unset: not checked, which hark allows on loopback only."""
    auth_token_file: Path | None = None
    """A file holding the auth token (e.g. a Docker or systemd secret); wins over ``auth_token``."""
    public_url: str | None = None
    """The URL Twilio reaches hark at, e.g. ``https://voice.example.com`` behind a proxy or
    tunnel: the signature covers it, and the stream URL is built from it. Unset: the request's."""
    greeting_mode: Literal["text", "llm", "none"] = "text"
    """How a call opens, before the caller says anything: ``greeting`` spoken as written (the
    fastest), a greeting written by the LLM (``greeting_prompt``), or silence."""
    greeting: str = Field("Hello! How can I help you?", max_length=1000)
    greeting_prompt: str = Field(
        "The phone call has just been connected. Greet the caller in one short sentence.", max_length=2000
    )
    token_ttl_s: int = Field(30, ge=5, le=600)
    """Lifetime of the single-use token the webhook puts in the stream's parameters."""
    start_timeout_s: float = Field(5.0, gt=0.0, le=60.0)
    """A stream socket that has not sent a valid ``start`` by then is closed."""
    dtmf: Literal["text", "ignore"] = "text"
    """Keypad digits: ``text`` adds them to the conversation as a user message ``[keypad] 42``
    (answered like speech, cutting a reply short) once ``dtmf_gap_ms`` passes without another
    digit or ``#`` is pressed; ``ignore`` counts and drops them."""
    dtmf_gap_ms: int = Field(1500, ge=100, le=10_000)

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        return checked_url(value)

    def token(self) -> str | None:
        """The auth token from ``auth_token_file``, else ``auth_token``."""
        if self.auth_token_file is not None:
            try:
                return self.auth_token_file.read_text(encoding="utf-8").strip() or None
            except OSError as exc:
                raise ConfigError(f"cannot read twilio.auth_token_file: {exc.strerror}") from exc
        return self.auth_token.get_secret_value() if self.auth_token else None


class IceServer(Section):
    """One STUN or TURN server, as ``RTCIceServer`` spells it."""

    urls: list[str] = Field(min_length=1)
    """``stun:host:3478``, ``turn:host:3478?transport=udp``, ``turns:host:5349``."""
    username: str | None = None
    credential: SecretStr | None = None


class WebRTCSettings(Section):
    """WebRTC calls (``POST /v1/realtime/calls``, docs/protocol.md "WebRTC")."""

    enabled: bool = True
    ice_servers: list[IceServer] = Field(default_factory=list)
    """STUN/TURN for peers behind NAT (docs/deploy.md "WebRTC"). Empty: host candidates only,
    which is enough on loopback and a LAN."""
    gather_timeout_s: float = Field(2.0, gt=0.0, le=30.0)
    """The answer waits at most this long for ICE candidates (an unreachable STUN/TURN server
    would stall it); past it the answer is made again with host candidates only."""
    connect_timeout_s: float = Field(10.0, gt=0.0, le=120.0)
    """A call whose ICE and DTLS have not completed by then is closed (and counted)."""
    loopback_candidates: Literal["auto", "only", "never"] = "auto"
    """Host candidates on 127.0.0.1 and ::1, which ICE leaves out (``webrtc/hosts.py``).
    ``auto``: only on a machine with no other interface (else no call could connect there);
    ``only``: loopback only, so media never leaves the machine (callers on the same host);
    ``never``: every interface but loopback, whatever the machine has."""
    codec_tail_ms: int = Field(32, ge=0, le=256)
    """How much later a call's VAD hears the caller's speech end than it would in uncoded audio
    (``HARK_WEBRTC_CODEC_TAIL_MS``): libopus's look-ahead and the coded tail, which Silero scores
    as speech a little longer. A call counts that much of each silence as heard already, so it
    answers after the same real silence as a WebSocket client (docs/protocol.md "WebRTC"). Whole
    32 ms chunks; 0 counts none."""
    dtx: bool = True
    """Discontinuous transmission on the reply track (``HARK_WEBRTC_DTX``): after 500 ms of
    silence, one silent packet every 400 ms instead of one every 20 ms, as libopus's own DTX
    does; a reply starts at once and goes out in 20 ms packets. Saves the sending of ~47
    packets a second per idle call; off: a packet every 20 ms, always."""
