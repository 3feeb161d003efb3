"""Build the engines the settings ask for, once per process; every session shares them.

This module sits above ``hark.engines`` (protocols, registry, fallback chains) and
``hark.workers`` (the process pool), which know nothing of each other: it builds each stage's
providers from the registry, hands the CPU-heavy ones to a worker pool (with ``registry.build``
as the pool's factory) and wraps every stage in its fallback chain. ``hark.services`` calls it.

Two steps. ``prebuild`` (blocking, before the server starts) constructs every engine that runs
in this process, so a bad provider config stops start-up with a clear message. ``assemble``
(async, in the server's lifespan) starts the worker pool for the local CPU-heavy engines and
puts each stage's chain together.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hark.config import ProviderConfig, Settings
from hark.engines import registry
from hark.engines.base import VAD, TurnModel
from hark.engines.fallback import FallbackLLM, FallbackSTT, FallbackTTS
from hark.errors import ConfigError, EngineError, MissingDependency
from hark.workers import POOLED_KINDS, WorkerPool, available_cores, default_processes, pooled_engines

log = logging.getLogger("hark.engines")

ECHO_SETTING = "HARK_LLM_BASE_URL=http://127.0.0.1:11434/v1 HARK_LLM_MODEL=llama3.2"
# In-process engines cheap to warm (no paid request): they get one tiny inference at start.
LOCAL_KINDS = frozenset({("stt", "faster-whisper"), ("tts", "piper"), ("tts", "espeak")})

Slot = tuple[str, int]
"""(stage, index into that stage's providers)."""


@dataclass(slots=True)
class Prebuilt:
    vad: VAD
    engines: dict[Slot, Any]
    pooled: list[tuple[Slot, ProviderConfig]] = field(default_factory=list)
    speaker_error: str | None = None
    turn: TurnModel | None = None


@dataclass(slots=True)
class Engines:
    vad: VAD
    stt: FallbackSTT
    tts: FallbackTTS
    llm: FallbackLLM | None
    pool: WorkerPool | None = None
    local: list[Any] = field(default_factory=list)
    """In-process local engines, warmed at start."""
    speaker: Any = None
    """The speaker-embedding engine for meetings (pooled or in-process); None when unused or
    unavailable (``speaker_error`` says why)."""
    speaker_error: str | None = None
    turn: TurnModel | None = None
    """The end-of-turn model semantic turns ask (None when it is not installed)."""

    async def aclose(self) -> None:
        # 1. The chains (and their probes and in-process engines).  2. The worker processes.
        for engine in (self.llm, self.tts, self.stt, self.vad, self.turn):
            if engine is not None:
                await engine.aclose()
        if self.pool is not None:
            await self.pool.aclose()


def stage_providers(settings: Settings) -> dict[str, list[ProviderConfig]]:
    return {"stt": settings.stt.providers, "tts": settings.tts.providers, "llm": settings.llm.chain()}


def prebuild(settings: Settings) -> Prebuilt:
    """Blocking: construct the in-process engines (loading local models unless pooled)."""
    started = time.perf_counter()
    registry.load_plugins(settings.server.plugins)
    registry.check_options(stage_providers(settings))
    vad = registry.resolve(registry.VAD_ENGINES, "silero", "vad")(settings.vad.model_path)
    built: dict[Slot, Any] = {}
    pooled: list[tuple[Slot, ProviderConfig]] = []
    for stage, providers in stage_providers(settings).items():
        for index, provider in enumerate(providers):
            if settings.workers.enabled and (stage, provider.kind) in POOLED_KINDS:
                registry.resolve(registry.STAGES[stage], provider.kind, f"{stage}.providers")
                pooled.append(((stage, index), provider))
                continue
            try:
                built[(stage, index)] = registry.build(stage, provider, settings)
            except (EngineError, MissingDependency, ConfigError) as exc:
                raise ConfigError(f"{stage}.providers[{index}] ({provider.label}): {exc}") from exc
    speaker_error = _prebuild_speaker(settings, built, pooled)
    log.info(
        "engines built", extra={"seconds": round(time.perf_counter() - started, 2), "pooled": len(pooled)}
    )
    return Prebuilt(
        vad=vad, engines=built, pooled=pooled, speaker_error=speaker_error, turn=turn_model(settings)
    )


SPEAKER_SLOT: Slot = ("speaker", 0)


def _prebuild_speaker(
    settings: Settings, built: dict[Slot, Any], pooled: list[tuple[Slot, ProviderConfig]]
) -> str | None:
    """The CAM++ embedder for meeting diarisation (also pyannote's fallback), pooled like the
    STT when workers are on. A missing or damaged model is not fatal: meetings fall back to
    model-free clustering and say why. Returns that reason, or None."""
    meetings = settings.meetings
    if meetings.diarization == "clustering":
        return None
    from hark.engines.speaker.campplus import CampPlusEmbedder, verify_model

    provider = ProviderConfig(kind="campplus", model_path=meetings.speaker_model)
    try:
        verify_model(meetings.speaker_model)
        if settings.workers.enabled:
            pooled.append((SPEAKER_SLOT, provider))
        else:
            built[SPEAKER_SLOT] = CampPlusEmbedder(meetings.speaker_model)
    except (EngineError, MissingDependency) as exc:
        log.warning("speaker model unavailable; meetings cluster voice features instead")
        return str(exc)
    return None


def turn_model(settings: Settings) -> TurnModel | None:
    """Smart Turn, when semantic turns are the default or the model is installed for sessions
    that ask for them; without it a ``semantic_vad`` session ends turns on silence alone."""
    try:
        return registry.resolve(registry.TURN_ENGINES, "smart-turn", "vad")(settings.vad.turn_model_path)  # type: ignore[no-any-return]
    except (EngineError, MissingDependency) as exc:
        if settings.vad.turn_detection == "semantic_vad":
            raise ConfigError(
                f"vad.turn_detection is semantic_vad but the turn model cannot load: {exc}"
            ) from exc
        log.warning("no turn model; semantic_vad sessions end turns on silence", extra={"error": str(exc)})
        return None


def worker_settings(settings: Settings) -> Settings:
    """What each worker loads with: one inference at a time, its STT on every core.

    Every core, not its share: measured on 2 cores with 2 workers (tiny.en, a 1.8 s question),
    a transcription alone took 444 ms instead of 553, two at once 652 instead of 729 each, and
    one beside a Piper sentence 603 instead of 745, for 6-12% later first Piper audio. Less
    OpenMP busy-waiting (OMP_WAIT_POLICY=PASSIVE, a low GOMP_SPINCOUNT) gained nothing."""
    fw = settings.stt.faster_whisper
    fw = fw.model_copy(update={"threads": fw.threads or available_cores()})
    stt = settings.stt.model_copy(update={"workers": 1, "faster_whisper": fw})
    tts = settings.tts.model_copy(update={"workers": 1})
    return settings.model_copy(update={"stt": stt, "tts": tts})


async def assemble(settings: Settings, prebuilt: Prebuilt) -> Engines:
    """Start the worker pool (when any engine is pooled) and build each stage's chain."""
    engines = dict(prebuilt.engines)
    pool: WorkerPool | None = None
    if prebuilt.pooled:
        processes = settings.workers.processes or default_processes()
        pool = WorkerPool(
            [(stage, provider) for (stage, _), provider in prebuilt.pooled],
            worker_settings(settings),
            factory=registry.build,
            processes=processes,
            queue_limit=settings.workers.queue_limit,
            request_timeout_s=settings.workers.request_timeout_s,
            start_timeout_s=settings.workers.start_timeout_s,
            partial_stale_s=settings.workers.partial_max_wait_s or None,
        )
        started = time.perf_counter()
        await pool.start()
        log.info(
            "workers ready",
            extra={"processes": processes, "seconds": round(time.perf_counter() - started, 2)},
        )
        for (slot, _), proxy in zip(prebuilt.pooled, pooled_engines(pool), strict=True):
            engines[slot] = proxy
    chains: dict[str, list[tuple[ProviderConfig, Any]]] = {
        stage: [(provider, engines[(stage, index)]) for index, provider in enumerate(providers)]
        for stage, providers in stage_providers(settings).items()
    }
    local = [
        engines[(stage, index)]
        for stage, providers in stage_providers(settings).items()
        for index, provider in enumerate(providers)
        if (stage, provider.kind) in LOCAL_KINDS and (stage, index) in prebuilt.engines
    ]
    return Engines(
        vad=prebuilt.vad,
        stt=FallbackSTT(chains["stt"], settings.fallback),
        tts=FallbackTTS(chains["tts"], settings.fallback),
        llm=FallbackLLM(chains["llm"], settings.fallback) if chains["llm"] else None,
        pool=pool,
        local=local,
        speaker=engines.get(SPEAKER_SLOT),
        speaker_error=prebuilt.speaker_error,
        turn=prebuilt.turn,
    )


async def warm_up(engines: Engines) -> None:
    """One tiny inference per local in-process engine and the VAD, so the first user does not
    pay for lazy initialisation. Remote providers are not warmed: that would be a paid request."""
    started = time.perf_counter()
    try:
        for engine in engines.local:
            if hasattr(engine, "transcribe"):
                await engine.transcribe(np.zeros(engine.sample_rate // 2, dtype=np.float32))
            else:
                async for _ in engine.synthesize("Ready."):
                    pass
        stream = engines.vad.new_stream()
        await engines.vad.probabilities(stream, [np.zeros(engines.vad.chunk_samples, dtype=np.float32)])
    except EngineError as exc:
        log.warning("warm-up failed", extra={"engine": exc.engine, "error": str(exc)})
        return
    log.info("engines warm", extra={"seconds": round(time.perf_counter() - started, 2)})
