"""The audio of the turn being spoken, kept as one growing array.

Each chunk is copied in as it comes, so the turn's audio is ready when the turn ends: ``take``
hands over the array without a copy. Joining the turn's chunks at that moment instead cost
~0.1 ms on the way from the end of a turn to the LLM's request (docs/benchmarks.md, entry 31).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from hark.engines.base import Float32Array

INITIAL_CHUNKS = 128
"""Room allocated for a new utterance (4 s of 32 ms chunks); it doubles when speech goes on."""


class Utterance:
    def __init__(self, chunk_samples: int, max_chunks: int) -> None:
        """``max_chunks``: only the newest that many chunks (each ``chunk_samples`` long) are kept."""
        self._chunk = chunk_samples
        self._max = max_chunks * chunk_samples
        self._buffer = self._new()
        self._start = 0
        self._end = 0

    def _new(self) -> Float32Array:
        return np.empty(min(INITIAL_CHUNKS * self._chunk, self._max), dtype=np.float32)

    def __len__(self) -> int:
        """In chunks."""
        return (self._end - self._start) // self._chunk

    def append(self, chunk: Float32Array) -> None:
        size = len(chunk)
        if self._end + size > len(self._buffer):
            # A new array rather than a move in place: audio handed out by ``take`` stays as it was.
            live = self._end - self._start
            capacity = max(live + size, min(2 * len(self._buffer), 2 * self._max))
            grown = np.empty(capacity, dtype=np.float32)
            grown[:live] = self._buffer[self._start : self._end]
            self._buffer, self._start, self._end = grown, 0, live
        self._buffer[self._end : self._end + size] = chunk
        self._end += size
        if self._end - self._start > self._max:
            self._start = self._end - self._max

    def extend(self, chunks: Iterable[Float32Array]) -> None:
        for chunk in chunks:
            self.append(chunk)

    def restart(self, chunks: Iterable[Float32Array]) -> None:
        """Start a new utterance with ``chunks`` (the audio from just before speech began)."""
        self.clear()
        self.extend(chunks)

    def audio(self) -> Float32Array:
        """A copy of the utterance so far."""
        return self._buffer[self._start : self._end].copy()

    def take(self) -> Float32Array:
        """The utterance (no copy: it is no longer kept here), and start afresh."""
        audio = self._buffer[self._start : self._end]
        self._buffer, self._start, self._end = self._new(), 0, 0
        return audio

    def clear(self) -> None:
        if len(self._buffer) > INITIAL_CHUNKS * self._chunk:
            self._buffer = self._new()  # a long turn's room is not kept for the next
        self._start = self._end = 0
