"""The server process: HTTP, logs and traces, worker processes, admission, the shared store."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import ConfigDict, Field, SecretStr

from hark.config.base import Section


class ServerSettings(Section):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_dir: Path | None = None
    """Write logs to LOG_DIR/hark.log (rotated); when unset or not writable, to stderr (journald)."""
    admin_key: SecretStr | None = None
    """Bearer token for the /admin API; without it the admin API is off."""
    api_docs: bool | None = None
    """Serve /docs, /redoc and /openapi.json. Default (unset): only when bound to loopback."""
    header_timeout_s: float = Field(10.0, gt=0.0, le=600.0)
    """A new connection must send a request's headers within this (slow-header clients are cut);
    an open keep-alive connection idle for ``keep_alive_s`` is closed too."""
    keep_alive_s: int = Field(5, ge=1, le=600)
    body_timeout_s: float = Field(30.0, gt=0.0, le=3600.0)
    """A request body that stops arriving for this long is answered 408."""
    websocket_compression: bool = False
    """Accept permessage-deflate when a WebSocket client offers it (browsers and the OpenAI SDKs
    do). Off, the offer is declined and the connection goes on uncompressed: PCM hardly
    compresses, and deflate on every frame cost the server ~1.1 ms of CPU per session-second
    at 100 sessions, a fifth more (docs/benchmarks.md, entry 30). On suits base64 audio over
    slow links."""
    plugins: list[str] = Field(default_factory=list)
    """Modules imported at start-up whose ``register()`` adds provider kinds, e.g.
    ``hark.bench.fakes`` (the benchmark's fixed-delay engines, kind ``scripted``)."""


class RedisSettings(Section):
    url: SecretStr | None = None
    """redis://host:6379/0 — session state, history and rate limits shared across instances;
    unset: in memory (one instance)."""
    key_prefix: str = Field("hark:", max_length=64)
    resume_ttl_s: int = Field(300, ge=10, le=86_400)
    """How long a disconnected session can be resumed with its token."""
    timeout_s: float = Field(2.0, gt=0.0, le=60.0)


class ObservabilitySettings(Section):
    log_format: Literal["text", "json"] = "text"
    debug_fields: bool = False
    """Include transcripts in explicitly marked debug log fields. Off: they never appear."""
    log_ids: bool = False
    """Log meeting ids as they are. Off: INFO lines carry a per-process digest of the id instead,
    so a log reader cannot fetch or delete a meeting with what the log shows."""
    otel_endpoint: str | None = None
    """OTLP endpoint for per-turn traces (needs the opentelemetry extra)."""


class WorkerSettings(Section):
    """Local CPU-heavy engines (faster-whisper, Piper) run in supervised worker processes."""

    enabled: bool = True
    processes: int = Field(0, ge=0, le=64)
    """Worker processes; 0 means one per CPU core."""
    queue_limit: int = Field(16, ge=1, le=10_000)
    """Requests that may wait for a worker. Beyond it the least urgent waiting work (partial,
    then speculative transcriptions) is shed to make room, API requests get 503 + Retry-After,
    and a finished turn's transcript or the reply being spoken still joins (late, not lost)."""
    partial_max_wait_s: float = Field(1.0, ge=0.0, le=60.0)
    """A partial transcript that waited longer than this for a worker is dropped unrun (the
    next one supersedes it); 0 keeps them however late."""
    request_timeout_s: float = Field(30.0, gt=0.0, le=3600.0)
    """A request running longer is taken as a hang: the worker is killed and restarted."""
    start_timeout_s: float = Field(120.0, gt=0.0, le=3600.0)


class AdmissionSettings(Section):
    """When new conversations are refused (503 / close 1013 + Retry-After, ``/ready`` 503) so
    that the ones already running keep their latency. See docs/deploy.md, "Sizing a box"."""

    max_conversations: int = Field(0, ge=0, le=100_000)
    """Realtime conversations this box holds at the latency you want: measure it with
    ``hark bench --only talkers``. 0: no fixed number (only ``security.max_sessions``)."""
    max_wait_s: float = Field(2.0, ge=0.0, le=60.0)
    """Saturation, measured live: while a finished turn's transcript or a reply's speech waited
    longer than this for a worker within the last ``window_s``, new conversations are refused.
    Normal is under one service time (~0.5 s on 2 cores); 0 turns the live check off."""
    window_s: float = Field(10.0, gt=0.0, le=600.0)
    retry_after_s: float = Field(5.0, ge=1.0, le=600.0)
    """Retry-After sent with a refusal."""
