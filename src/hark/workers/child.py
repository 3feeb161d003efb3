"""The worker process: builds its engines once, warms them, then serves one request at a time.

It runs in a *spawned* interpreter (never forked), so everything it gets from the parent comes
through its arguments and its pipe (the messages in ``hark.workers.proto``), and everything it
needs must be importable. The engines' methods are coroutines wrapping blocking code; one
``asyncio.Runner`` loop per child drives them, request after request.
"""

from __future__ import annotations

import asyncio
import contextlib
import pickle
import signal
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from hark.config import ProviderConfig, Settings
from hark.errors import EngineError
from hark.workers.proto import (
    Call,
    Chunk,
    Done,
    Embed,
    EngineInfo,
    Failed,
    Failure,
    Ready,
    Synthesize,
    Transcribe,
)

Factory = Callable[[str, ProviderConfig, Settings], Any]
"""Builds one engine: ``registry.build`` or a test double. Must be a module-level function,
because it is pickled by reference into the spawned child."""

WARM_TEXT = "Hello."
WARM_AUDIO_S = 0.5


def main(
    conn: Connection,
    settings_data: dict[str, Any],
    stages: list[tuple[str, dict[str, Any]]],
    factory: Factory,
) -> None:
    """Process entry point (the target of ``multiprocessing.Process``)."""
    # Ctrl-C reaches the whole process group; the parent decides when its workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with asyncio.Runner() as runner:
        try:
            started = time.monotonic()
            engines = _build(settings_data, stages, factory)
            for (stage, _), engine in zip(stages, engines, strict=True):
                runner.run(_warm(stage, engine))
            infos = [_info(stage, engine) for (stage, _), engine in zip(stages, engines, strict=True)]
        except Exception as exc:  # a bad model path, a missing package: the parent reports it
            with contextlib.suppress(OSError):
                conn.send(Failed(_describe(exc)))
            return
        try:
            conn.send(Ready(infos, time.monotonic() - started))
            _serve(conn, runner, engines)
        except (EOFError, OSError):
            pass  # the parent closed the pipe (shutdown) or is gone: either way, stop
        finally:
            runner.run(_close(engines))


def _build(
    settings_data: dict[str, Any], stages: list[tuple[str, dict[str, Any]]], factory: Factory
) -> list[Any]:
    settings = Settings.model_validate(settings_data)
    return [factory(stage, ProviderConfig.model_validate(provider), settings) for stage, provider in stages]


async def _warm(stage: str, engine: Any) -> None:
    """One real call, so the first user request does not pay for lazy initialisation."""
    if stage == "stt":
        await engine.transcribe(np.zeros(int(engine.sample_rate * WARM_AUDIO_S), dtype=np.float32))
    elif stage == "tts":
        async for _ in engine.synthesize(WARM_TEXT):
            pass
    elif stage == "speaker":
        engine.embed([np.zeros(int(engine.sample_rate * WARM_AUDIO_S), dtype=np.float32)])


def _info(stage: str, engine: Any) -> EngineInfo:
    return EngineInfo(stage, str(engine.name), int(engine.sample_rate), engine.capabilities)


def _serve(conn: Connection, runner: asyncio.Runner, engines: list[Any]) -> None:
    while True:
        call: Call = conn.recv()

        def chunk(data: bytes, call_id: int = call.id) -> None:
            conn.send(Chunk(call_id, data))

        reply = runner.run(_handle(call, engines[call.engine], chunk))
        try:
            conn.send(reply)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:  # nothing was written yet
            conn.send(Failure(call.id, f"the worker cannot send its result: {_describe(exc)}", False))


async def _handle(call: Call, engine: Any, chunk: Callable[[bytes], None]) -> Done | Failure:
    try:
        match call.request:
            case Transcribe(audio, language, deterministic):
                transcript = await engine.transcribe(audio, language=language, deterministic=deterministic)
                return Done(call.id, transcript)
            case Embed(clips):
                return Done(call.id, engine.embed(clips))
            case Synthesize(text):
                async for pcm in engine.synthesize(text):
                    if pcm:
                        chunk(pcm)
                return Done(call.id, None)
    except EngineError as exc:
        return Failure(call.id, str(exc), exc.retryable)
    except (TimeoutError, OSError) as exc:
        return Failure(call.id, _describe(exc), True)
    except Exception as exc:  # an engine bug: report it, keep the worker (its model is intact)
        return Failure(call.id, _describe(exc), False)


async def _close(engines: list[Any]) -> None:
    for engine in engines:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2.0):
                await engine.aclose()


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if not isinstance(exc, EngineError) else str(exc)
