"""Silero VAD, run as ONNX with onnxruntime and batched across streams.

The model file comes from the installed ``silero-vad`` wheel, located without importing the
package (its ``__init__`` imports torch).
"""

from __future__ import annotations

import asyncio
import importlib.util
import queue
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hark.engines.base import Float32Array, VADStream
from hark.errors import EngineError, MissingDependency

SAMPLE_RATE = 16_000
CHUNK = 512
CONTEXT = 64
_MAX_BATCH = 128


def default_model_path() -> Path:
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependency("silero-vad", "pip install --no-deps silero-vad")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "silero_vad.onnx"
    if not path.is_file():
        raise EngineError(f"silero-vad is installed but {path} is missing; reinstall it", engine="silero")
    return path


@dataclass(slots=True)
class _Request:
    stream: VADStream
    chunks: Sequence[Float32Array]
    future: asyncio.Future[list[float]]
    loop: asyncio.AbstractEventLoop


class SileroVAD:
    """One shared model; a worker thread runs whatever streams have pending audio as one batch."""

    sample_rate = SAMPLE_RATE
    chunk_samples = CHUNK

    def __init__(self, model_path: Path | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        path = model_path or default_model_path()
        try:
            self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise EngineError(f"cannot load the VAD model {path}: {exc}", engine="silero") from exc
        self._sr = np.array(SAMPLE_RATE, dtype=np.int64)
        self._requests: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._work, name="hark-vad", daemon=True)
        self._thread.start()

    def new_stream(self) -> VADStream:
        return VADStream(
            state=np.zeros((2, 1, 128), dtype=np.float32), context=np.zeros(CONTEXT, dtype=np.float32)
        )

    async def probabilities(self, stream: VADStream, chunks: Sequence[Float32Array]) -> list[float]:
        if not chunks:
            return []
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[float]] = loop.create_future()
        self._requests.put(_Request(stream, chunks, future, loop))
        return await future

    def run_batch(self, streams: Sequence[VADStream], chunks: Sequence[Float32Array]) -> list[float]:
        """One step for several streams at once: one chunk each, states updated in place."""
        batch = np.empty((len(streams), CONTEXT + CHUNK), dtype=np.float32)
        for row, (stream, chunk) in enumerate(zip(streams, chunks, strict=True)):
            batch[row, :CONTEXT] = stream.context
            batch[row, CONTEXT:] = chunk
        state = np.concatenate([s.state for s in streams], axis=1)
        out, new_state = self._session.run(None, {"input": batch, "state": state, "sr": self._sr})
        for row, stream in enumerate(streams):
            stream.state = new_state[:, row : row + 1, :].copy()
            stream.context = batch[row, -CONTEXT:].copy()
        return [float(p) for p in out[:, 0]]

    def _work(self) -> None:
        while True:
            first = self._requests.get()
            if first is None:
                return
            pending = [first]
            while len(pending) < _MAX_BATCH:
                try:
                    more = self._requests.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._requests.put(None)
                    break
                pending.append(more)
            self._run(pending)

    def _run(self, pending: list[_Request]) -> None:
        results: list[list[float]] = [[] for _ in pending]
        try:
            steps = max(len(r.chunks) for r in pending)
            for step in range(steps):
                active = [i for i, r in enumerate(pending) if step < len(r.chunks)]
                probs = self.run_batch(
                    [pending[i].stream for i in active], [pending[i].chunks[step] for i in active]
                )
                for i, p in zip(active, probs, strict=True):
                    results[i].append(p)
        except Exception as exc:
            error = EngineError(f"VAD inference failed: {exc}", engine="silero")
            for r in pending:
                r.loop.call_soon_threadsafe(_set_exception, r.future, error)
            return
        for r, probs in zip(pending, results, strict=True):
            r.loop.call_soon_threadsafe(_set_result, r.future, probs)

    async def aclose(self) -> None:
        self._requests.put(None)


def _set_result(future: asyncio.Future[list[float]], value: list[float]) -> None:
    if not future.done():
        future.set_result(value)


def _set_exception(future: asyncio.Future[list[float]], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
