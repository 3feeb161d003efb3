"""Build the engines the settings ask for, once per process; every session shares them."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from hark.config import ProviderConfig, Settings
from hark.engines import registry
from hark.engines.base import VAD
from hark.engines.fallback import FallbackLLM, FallbackSTT, FallbackTTS
from hark.errors import ConfigError, EngineError, MissingDependency

log = logging.getLogger("hark.engines")

ECHO_SETTING = "HARK_LLM_BASE_URL=http://127.0.0.1:11434/v1 HARK_LLM_MODEL=llama3.2"


@dataclass(slots=True)
class Engines:
    vad: VAD
    stt: FallbackSTT
    tts: FallbackTTS
    llm: FallbackLLM | None

    async def aclose(self) -> None:
        for engine in (self.llm, self.tts, self.stt, self.vad):
            if engine is not None:
                await engine.aclose()


def load_engines(settings: Settings) -> Engines:
    """Blocking: loads the models. Call it off the event loop."""
    started = time.perf_counter()
    vad = registry.resolve(registry.VAD_ENGINES, "silero", "vad")(settings.vad.model_path)
    stt = FallbackSTT(_build("stt", settings.stt.providers, settings), settings.fallback)
    tts = FallbackTTS(_build("tts", settings.tts.providers, settings), settings.fallback)
    chain = settings.llm.chain()
    llm = FallbackLLM(_build("llm", chain, settings), settings.fallback) if chain else None
    log.info("engines loaded", extra={"seconds": round(time.perf_counter() - started, 2)})
    return Engines(vad=vad, stt=stt, tts=tts, llm=llm)


def _build(
    stage: str, providers: list[ProviderConfig], settings: Settings
) -> list[tuple[ProviderConfig, Any]]:
    built = []
    for index, provider in enumerate(providers):
        try:
            built.append((provider, registry.build(stage, provider, settings)))
        except (EngineError, MissingDependency, ConfigError) as exc:
            raise ConfigError(f"{stage}.providers[{index}] ({provider.label}): {exc}") from exc
    return built


async def warm_up(engines: Engines) -> None:
    """One tiny inference per engine, so the first user does not pay for lazy initialisation."""
    started = time.perf_counter()
    silence = np.zeros(engines.stt.sample_rate // 2, dtype=np.float32)
    try:
        await engines.stt.transcribe(silence)
        async for _ in engines.tts.synthesize("Ready."):
            pass
        stream = engines.vad.new_stream()
        await engines.vad.probabilities(stream, [np.zeros(engines.vad.chunk_samples, dtype=np.float32)])
    except EngineError as exc:
        log.warning("warm-up failed", extra={"engine": exc.engine, "error": str(exc)})
        return
    log.info("engines warm", extra={"seconds": round(time.perf_counter() - started, 2)})
