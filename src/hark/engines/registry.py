"""Engines by name, imported on demand so an unused provider's dependencies are never needed.

A plugin (a module named in ``server.plugins``) adds kinds of its own: its ``register()`` calls
:func:`register`. The benchmark's fixed-delay fakes come in that way (``hark.bench.fakes``).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from hark.config.engine_options import FasterWhisperOptions, PiperOptions, describe_option_errors
from hark.errors import ConfigError, MissingDependency

if TYPE_CHECKING:
    from hark.config import ProviderConfig, Settings

_OPENAI_LLM = "hark.engines.llm.openai_compat:OpenAICompatibleLLM"

STT_ENGINES = {
    "faster-whisper": "hark.engines.stt.faster_whisper:FasterWhisperSTT",
    "deepgram": "hark.engines.stt.deepgram:DeepgramSTT",
    "openai": "hark.engines.stt.openai_stt:OpenAISTT",
}
TTS_ENGINES = {
    "piper": "hark.engines.tts.piper:PiperTTS",
    "elevenlabs": "hark.engines.tts.elevenlabs:ElevenLabsTTS",
    "cartesia": "hark.engines.tts.cartesia:CartesiaTTS",
    "openai": "hark.engines.tts.openai_tts:OpenAITTS",
    "espeak": "hark.engines.tts.espeak:EspeakTTS",
}
LLM_ENGINES = {
    "openai": _OPENAI_LLM,
    "vllm": _OPENAI_LLM,
    "ollama": _OPENAI_LLM,
    "groq": _OPENAI_LLM,
    "xai": _OPENAI_LLM,
    "cerebras": _OPENAI_LLM,
    "azure": "hark.engines.llm.azure:AzureOpenAILLM",
    "anthropic": "hark.engines.llm.anthropic:AnthropicLLM",
    "gemini": "hark.engines.llm.gemini:GeminiLLM",
    "llama-cpp": "hark.engines.llm.llama_cpp:LlamaCppLLM",
}
VAD_ENGINES = {"silero": "hark.engines.vad.silero:SileroVAD"}
SPEAKER_ENGINES = {"campplus": "hark.engines.speaker.campplus:CampPlusEmbedder"}
TURN_ENGINES = {"smart-turn": "hark.engines.turn.smart_turn:SmartTurn"}

STAGES = {"stt": STT_ENGINES, "tts": TTS_ENGINES, "llm": LLM_ENGINES, "speaker": SPEAKER_ENGINES}

# The kinds whose ``ProviderConfig.options`` are typed: checked against this model (over the
# stage's defaults, ``stt.faster_whisper`` and ``tts.piper``) before anything is built. Other
# kinds take free-form extras.
OPTIONS: dict[str, dict[str, type[BaseModel]]] = {
    "stt": {"faster-whisper": FasterWhisperOptions},
    "tts": {"piper": PiperOptions},
    "llm": {},
    "speaker": {},
}

# Third-party packages that come with an extra, and the command that installs them.
_EXTRAS = {
    "llama_cpp": "pip install 'hark[llama]'",
    "anthropic": "pip install 'hark[anthropic]'",
    "google": "pip install 'hark[gemini]'",
}


def import_from_string(target: str) -> Any:
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        root = (exc.name or module_name).split(".")[0]
        if root in _EXTRAS:
            raise MissingDependency(root, _EXTRAS[root]) from exc
        raise
    return getattr(module, attr)


def register(stage: str, kind: str, target: str, options: type[BaseModel] | None = None) -> None:
    """Add provider ``kind`` to ``stage``'s table; ``target`` is ``"module:Class"``, imported
    when a provider of that kind is built; ``options``, when given, is the model its providers'
    ``options`` must fit. Registering the same target twice is harmless."""
    table = STAGES[stage]
    if table.get(kind, target) != target:
        raise ConfigError(f"{stage}: provider kind {kind!r} is taken by {table[kind]}")
    table[kind] = target
    if options is not None:
        OPTIONS[stage][kind] = options


def check_options(chains: Mapping[str, Sequence[ProviderConfig]]) -> None:
    """Check every provider's ``options`` against its kind's model, where one is declared.
    Raises ConfigError naming the provider and the bad key."""
    for stage, providers in chains.items():
        for index, provider in enumerate(providers):
            model = OPTIONS.get(stage, {}).get(provider.kind)
            if model is None:
                continue
            try:
                model.model_validate(provider.options)
            except ValidationError as exc:
                raise ConfigError(
                    f"{stage}.providers[{index}] ({provider.label}): {describe_option_errors(exc, model)}"
                ) from None


def load_plugins(modules: Sequence[str]) -> None:
    """Import each plugin module and call its ``register()`` (``server.plugins``)."""
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            raise ConfigError(f"server.plugins: cannot import {name!r}: {exc}") from exc
        hook = getattr(module, "register", None)
        if not callable(hook):
            raise ConfigError(f"server.plugins: {name} has no register() function")
        hook()


def resolve(table: dict[str, str], kind: str, stage: str) -> Any:
    try:
        target = table[kind]
    except KeyError:
        raise ConfigError(
            f"{stage}: unknown provider kind {kind!r}; known: {', '.join(sorted(table))}"
        ) from None
    return import_from_string(target)


def build(stage: str, provider: ProviderConfig, settings: Settings) -> Any:
    """Construct one provider's engine (blocking: local engines load their models here)."""
    return resolve(STAGES[stage], provider.kind, f"{stage}.providers").from_config(provider, settings)
