"""Credentials, tenants and the limits every client is held to."""

from __future__ import annotations

from pydantic import Field, SecretStr

from hark.config.base import Section


class APIKeyConfig(Section):
    """An API key with the tenant it belongs to. Keys of one tenant share its meetings, resume
    tokens and budgets; a plain key is a tenant of its own."""

    key: SecretStr
    tenant: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")

    def get_secret_value(self) -> str:
        """The key, as ``SecretStr`` gives it, so a list of keys reads the same either way."""
        return self.key.get_secret_value()


class SecuritySettings(Section):
    api_keys: list[SecretStr | APIKeyConfig] = Field(default_factory=list)
    """Keys accepted as ``Authorization: Bearer`` on REST and WebSocket: a string, or
    ``{key: ..., tenant: name}``. Empty: auth is off, which hark allows only when bound to
    loopback. What one tenant creates (meetings, resumable sessions) is invisible to the others."""
    token_secret: SecretStr | None = None
    """Signs the short-lived browser session tokens (JWT); a random one per process when unset."""
    token_ttl_s: int = Field(60, ge=5, le=3600)
    allowed_origins: list[str] = Field(default_factory=list)
    """Origins allowed to open WebSockets (e.g. https://app.example.com); empty: same host only."""
    max_sessions: int = Field(100, ge=1, le=100_000)
    preauth_per_address: int = Field(8, ge=1, le=10_000)
    """WebSockets from one address that may wait for first-message authentication at once; they
    do not count against ``max_sessions`` until they authenticate."""
    preauth_total: int = Field(64, ge=1, le=100_000)
    """All WebSockets waiting for first-message authentication at once."""
    auth_timeout_s: float = Field(3.0, gt=0.0, le=60.0)
    """How long an upgraded WebSocket may take to send ``{"type": "hark.auth", ...}``."""
    max_body_bytes: int = Field(1024 * 1024, ge=1024, le=1024 * 1024 * 1024)
    """Largest request body on JSON routes (refused with 413 while it is read)."""
    max_upload_bytes: int = Field(25 * 1024 * 1024, ge=1024, le=1024 * 1024 * 1024)
    """Largest audio file for transcriptions/translations (the multipart body may add 64 KiB)."""
    max_upload_audio_s: float = Field(600.0, gt=0.0, le=6 * 3600.0)
    """Longest audio an uploaded file may decode to; decoding stops there (413)."""
    max_jobs_per_key: int = Field(4, ge=1, le=10_000)
    """Speech, transcription and translation requests one tenant may have running at once."""
    tts_chars_per_minute: int = Field(20_000, ge=1, le=100_000_000)
    """Characters one tenant may have synthesised per minute (/v1/audio/speech), bursts included."""
    stt_audio_s_per_minute: float = Field(1800.0, gt=0.0, le=1_000_000.0)
    """Seconds of uploaded audio one tenant may have transcribed per minute."""
    rate_limit_per_minute: int = Field(120, ge=1, le=1_000_000)
    """New sessions and REST requests per minute, per key and per client address."""
    max_frame_bytes: int = Field(16 * 1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    max_audio_speed: float = Field(2.0, ge=1.0, le=100.0)
    """Audio faster than this many times real time is throttled."""
    idle_timeout_s: float = Field(60.0, gt=0.0, le=86_400.0)
    ping_interval_s: float = Field(20.0, gt=0.0, le=3600.0)
    ping_timeout_s: float = Field(20.0, gt=0.0, le=3600.0)
    outbound_buffer_bytes: int = Field(256 * 1024, ge=16 * 1024, le=64 * 1024 * 1024)
    drain_timeout_s: float = Field(30.0, ge=0.0, le=3600.0)
    """On SIGTERM, how long turns in progress may take to finish before sessions are closed."""
