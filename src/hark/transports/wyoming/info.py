"""``describe`` → ``info``: what this hark really serves, read from the running configuration.

- ``asr``: the STT chain, one model per provider, with its language; streamed from partials
  when ``stt.partial_interval_ms`` is above 0.
- ``tts``: the TTS chain as one voice (the first provider's; a fallback speaks in its place).
- ``handle``: hark's LLM conversation (``echo`` when no LLM is configured).
"""

from __future__ import annotations

import json
from pathlib import Path

from hark import __version__
from hark.config import ProviderConfig, Settings
from hark.errors import HarkError
from wyoming.info import (
    AsrModel,
    AsrProgram,
    Attribution,
    HandleModel,
    HandleProgram,
    Info,
    TtsProgram,
    TtsVoice,
)

ATTRIBUTION = Attribution(name="hark", url="")  # self-hosted: no public page to point at


def stt_model_name(provider: ProviderConfig, settings: Settings) -> str:
    if provider.kind == "faster-whisper":
        model = settings.stt.faster_whisper_for(provider).model
        return Path(model).name if model else "tiny.en"
    return provider.model or provider.label


def stt_language(provider: ProviderConfig, settings: Settings) -> str:
    return provider.language or settings.stt.language or "en"


def voice(settings: Settings) -> tuple[str, str]:
    """(name, language) of the chain's first voice."""
    provider = settings.tts.providers[0]
    if provider.kind == "piper":
        path = settings.tts.piper_for(provider).voice
        if path is None:
            from hark.engines.tts.piper import default_voice_path

            try:
                path = default_voice_path()
            except HarkError:
                return "piper", settings.stt.language or "en"
        return Path(path).name.removesuffix(".onnx"), _piper_language(Path(path))
    return provider.voice or provider.label, provider.language or settings.stt.language or "en"


def _piper_language(model: Path) -> str:
    try:
        config = json.loads(Path(f"{model}.json").read_text(encoding="utf-8"))
        return str(config["language"]["code"])
    except (OSError, ValueError, KeyError, TypeError):
        return "en"


def build_info(settings: Settings, *, llm_model: str | None) -> Info:
    """``llm_model``: the LLM chain's first model, or None in echo mode."""
    streaming_asr = settings.stt.partial_interval_ms > 0
    asr_models = [
        AsrModel(
            name=stt_model_name(p, settings),
            languages=[stt_language(p, settings)],
            attribution=ATTRIBUTION,
            installed=True,
            description=f"{p.label} in hark's speech-to-text chain",
            version=__version__,
        )
        for p in settings.stt.providers
    ]
    voice_name, voice_language = voice(settings)
    language = settings.stt.language or "en"
    handle_model = HandleModel(
        name=llm_model or "echo",
        languages=[language],
        attribution=ATTRIBUTION,
        installed=True,
        description=("hark's conversation" if llm_model else "echo mode: no language model is configured"),
        version=__version__,
    )
    return Info(
        asr=[
            AsrProgram(
                name="hark-asr",
                attribution=ATTRIBUTION,
                installed=True,
                description="hark speech-to-text",
                version=__version__,
                models=asr_models,
                supports_transcript_streaming=streaming_asr,
            )
        ],
        tts=[
            TtsProgram(
                name="hark-tts",
                attribution=ATTRIBUTION,
                installed=True,
                description="hark text-to-speech",
                version=__version__,
                voices=[
                    TtsVoice(
                        name=voice_name,
                        languages=[voice_language],
                        attribution=ATTRIBUTION,
                        installed=True,
                        description=f"{settings.tts.providers[0].label} voice",
                        version=__version__,
                    )
                ],
                supports_synthesize_streaming=True,
            )
        ],
        handle=[
            HandleProgram(
                name="hark-conversation",
                attribution=ATTRIBUTION,
                installed=True,
                description="hark's language-model conversation",
                version=__version__,
                models=[handle_model],
                supports_handled_streaming=True,
            )
        ],
    )
