"""Engines by name, imported on demand so an unused provider's dependencies are never needed."""

from __future__ import annotations

import importlib
from typing import Any

from hark.errors import ConfigError, MissingDependency

STT_ENGINES = {"faster-whisper": "hark.engines.stt.faster_whisper:FasterWhisperSTT"}
TTS_ENGINES = {"piper": "hark.engines.tts.piper:PiperTTS"}
LLM_ENGINES = {
    "openai": "hark.engines.llm.openai_compat:OpenAICompatibleLLM",
    "llama-cpp": "hark.engines.llm.llama_cpp:LlamaCppLLM",
}
VAD_ENGINES = {"silero": "hark.engines.vad.silero:SileroVAD"}

_EXTRAS = {"llama_cpp": "pip install 'hark[llama]'"}


def import_from_string(target: str) -> Any:
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or module_name
        root = missing.split(".")[0]
        if root in _EXTRAS:
            raise MissingDependency(root, _EXTRAS[root]) from exc
        raise
    return getattr(module, attr)


def resolve(table: dict[str, str], kind: str, stage: str) -> Any:
    try:
        target = table[kind]
    except KeyError:
        raise ConfigError(f"{stage}: unknown engine {kind!r}; known: {', '.join(sorted(table))}") from None
    return import_from_string(target)
