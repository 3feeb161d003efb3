"""Smart Turn v3.2: is the speaker done, judged from the sound of the last 8 s of their turn.

The 8 MB int8 ONNX model (BSD-2-Clause) ships inside the ``pipecat-ai`` wheel, which hark
installs with ``--no-deps`` and never imports: the file is located as Silero's is. Decisions of
all sessions that arrive while the model is busy run as one batch on one thread, off the event
loop (about 40 ms for one decision on one core).
"""

from __future__ import annotations

import asyncio
import importlib.util
import queue
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hark.engines._blocking import next_batch
from hark.engines.base import Float32Array
from hark.engines.turn.log_mel import SAMPLE_RATE, log_mel
from hark.errors import EngineError, MissingDependency

WINDOW_S = 8
_MAX_BATCH = 16
_MODEL = ("audio", "turn", "smart_turn", "data", "smart-turn-v3.2-cpu.onnx")


def default_model_path() -> Path:
    spec = importlib.util.find_spec("pipecat")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependency("pipecat-ai (for the Smart Turn model)", "pip install --no-deps pipecat-ai")
    path = Path(next(iter(spec.submodule_search_locations))).joinpath(*_MODEL)
    if not path.is_file():
        raise EngineError(f"{path} is missing; reinstall pipecat-ai", engine="smart-turn")
    return path


def model_input(audio: Float32Array) -> Float32Array:
    """The last 8 s of ``audio`` (16 kHz), silence-padded in front, as (80, 800) features."""
    window = SAMPLE_RATE * WINDOW_S
    clip = np.asarray(audio[-window:], dtype=np.float32)
    if len(clip) < window:
        clip = np.concatenate([np.zeros(window - len(clip), dtype=np.float32), clip])
    return log_mel(clip)


@dataclass(slots=True)
class _Request:
    features: Float32Array
    future: asyncio.Future[float]
    loop: asyncio.AbstractEventLoop


class SmartTurn:
    """One shared model; ``end_probability`` is safe to call from any session's event loop."""

    name = "smart-turn-v3.2"
    sample_rate = SAMPLE_RATE

    def __init__(self, model_path: Path | None = None, *, threads: int = 1) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        path = model_path or default_model_path()
        try:
            self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise EngineError(f"cannot load the turn model {path}: {exc}", engine="smart-turn") from exc
        self._input = self._session.get_inputs()[0].name
        self._requests: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._work, name="hark-turn", daemon=True)
        self._thread.start()

    async def end_probability(self, audio: Float32Array) -> float:
        """Probability that the turn in ``audio`` (16 kHz, ending now) is complete."""
        loop = asyncio.get_running_loop()
        features = await asyncio.to_thread(model_input, audio)  # ~3 ms of numpy, off the loop
        future: asyncio.Future[float] = loop.create_future()
        self._requests.put(_Request(features, future, loop))
        return await future

    def run_batch(self, features: list[Float32Array]) -> list[float]:
        (out,) = self._session.run(None, {self._input: np.stack(features)})
        return [float(p) for p in np.asarray(out).reshape(len(features), -1)[:, 0]]

    def _work(self) -> None:
        while (pending := next_batch(self._requests, _MAX_BATCH)) is not None:
            try:
                outcomes: list[float | BaseException] = list(self.run_batch([r.features for r in pending]))
            except Exception as exc:
                outcomes = [EngineError(f"turn model failed: {exc}", engine="smart-turn")] * len(pending)
            for request, outcome in zip(pending, outcomes, strict=True):
                request.loop.call_soon_threadsafe(_settle, request.future, outcome)

    async def aclose(self) -> None:
        self._requests.put(None)


def _settle(future: asyncio.Future[float], outcome: float | BaseException) -> None:
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
