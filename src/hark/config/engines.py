"""The engines' settings: VAD, each stage's fallback chain of providers, and what every provider of a
stage shares; the local engines' own options (faster-whisper, Piper) are in ``engine_options``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from hark.config.base import Section, checked_url
from hark.config.engine_options import FasterWhisperOptions, PiperOptions, migrate_flat_keys


class VADSettings(Section):
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
    semantic_min_logprob: float | None = Field(-0.8, ge=-5.0, le=0.0)
    """Semantic turns: words at a pause that the recogniser itself doubts (mean log-probability
    per token below this) do not end the turn, whatever the turn model says; the turn waits for
    the speaker to go on or for ``semantic_doubt_ms`` of silence. None: every transcript is
    read (docs/turn-taking.md)."""
    semantic_doubt_ms: float | None = Field(1000.0, ge=0.0, le=30_000.0)
    """... but only through this much silence: from the first ask at or after it the turn model
    decides alone, so a short answer the recogniser doubts does not wait for the longest
    silence. None: doubted words hold the turn to the longest silence."""
    turn_model_path: Path | None = None
    """Smart Turn ONNX file; default: the file inside the installed ``pipecat-ai`` wheel."""
    backchannels: bool = True
    """Speech over hark's reply pauses it and only real words interrupt it: a backchannel
    ("mhm", "yeah", "right"), a cough or a laugh resumes the reply and is not a turn. False:
    any speech over the reply cuts it off at once (docs/turn-taking.md)."""
    backchannel_words: list[Annotated[str, Field(min_length=1, max_length=40)]] | None = Field(
        None, max_length=200
    )
    """Words and phrases that do not interrupt (default: mhm, uh-huh, yeah, right, okay, ...)."""
    interruption_confirm_ms: int = Field(1000, ge=100, le=5000)
    """The longest a reply stays paused waiting for the speech over it to show words."""
    self_speech_guard: bool = True
    """Speech over the reply made of hark's own words (its voice heard back) does not interrupt."""
    interruption_min_logprob: float | None = Field(-0.7, ge=-5.0, le=0.0)
    """A short transcript of speech over the reply that the recogniser itself doubts (mean
    log-probability per token below this) does not interrupt: what tiny.en makes of a hum it
    cannot read ("Emmium", "And make sure it...") scored -0.73 to -0.97, real one-word
    interruptions -0.27 to -0.55. None: every transcript counts (docs/turn-taking.md)."""


class ProviderConfig(Section):
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
    """Provider-specific options. Typed for the kinds whose options model the registry declares
    (``faster-whisper``: ``FasterWhisperOptions``, over ``stt.faster_whisper``; ``piper``:
    ``PiperOptions``, over ``tts.piper``); free-form extras for the others (e.g. Azure's
    ``api_version``, Deepgram's ``endpointing``)."""

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        return checked_url(value, ("http", "https", "ws", "wss"))

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


class FallbackSettings(Section):
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


class STTSettings(Section):
    """What every STT provider shares; faster-whisper's own options are under ``faster_whisper``."""

    workers: int = Field(1, ge=1, le=32)
    """Transcriptions that may run at once."""
    language: str | None = "en"
    partial_interval_ms: int = Field(600, ge=0, le=10_000)
    """How often a partial transcript is made while the user speaks; 0 turns partials off."""
    faster_whisper: FasterWhisperOptions = FasterWhisperOptions()
    """Options of every ``faster-whisper`` provider; a provider's ``options`` override them."""
    providers: list[ProviderConfig] = Field(
        default_factory=lambda: [ProviderConfig(kind="faster-whisper", timeout=60.0)], min_length=1
    )
    """The fallback chain, first choice first."""

    @model_validator(mode="before")
    @classmethod
    def _flat_keys(cls, data: Any) -> Any:
        return migrate_flat_keys("stt", data, {"faster_whisper": FasterWhisperOptions})

    def faster_whisper_for(self, provider: ProviderConfig) -> FasterWhisperOptions:
        """What one faster-whisper provider runs with: ``faster_whisper``, then the provider's
        ``options``, then its ``model``. Raises ConfigError naming a bad option."""
        return self.faster_whisper.overridden(provider.options, model=provider.model)


class TTSSettings(Section):
    """What every TTS provider shares; Piper's own options are under ``piper``."""

    workers: int = Field(1, ge=1, le=32)
    piper: PiperOptions = PiperOptions()
    """Options of every ``piper`` provider; a provider's ``options`` override them."""
    providers: list[ProviderConfig] = Field(
        default_factory=lambda: [ProviderConfig(kind="piper", timeout=30.0)], min_length=1
    )
    """The fallback chain, first choice first."""

    @model_validator(mode="before")
    @classmethod
    def _flat_keys(cls, data: Any) -> Any:
        return migrate_flat_keys("tts", data, {"piper": PiperOptions})

    def piper_for(self, provider: ProviderConfig) -> PiperOptions:
        """What one Piper provider runs with: ``piper``, then the provider's ``options``, then its
        ``model_path`` or ``voice``. Raises ConfigError naming a bad option."""
        return self.piper.overridden(provider.options, voice=provider.model_path or provider.voice)


class LLMSettings(Section):
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
        return checked_url(value)

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
