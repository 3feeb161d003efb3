"""Writing one meeting's recording: PCM buffered in memory, spilled to the store in sealed chunks."""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING

from hark.meetings.sealing import Pcm
from hark.meetings.storage_errors import StorageError

if TYPE_CHECKING:
    from hark.meetings.storage import MeetingStore


class RecordingWriter:
    """Buffers PCM in memory; past the store's memory limit, whole chunks go to disk (each sealed on
    its own, so memory stays bounded by about the limit plus one chunk). Not thread-safe: one
    producer. ``write`` may block for a chunk's encryption and fsync (milliseconds).

    Made by :meth:`MeetingStore.open_recording`, whose ``_store_chunk`` and ``_finish`` it calls."""

    def __init__(self, store: MeetingStore, meeting_id: str, *, frame_bytes: int) -> None:
        self.meeting_id = meeting_id
        self.frame_bytes = frame_bytes
        self.bytes_written = 0
        self.chunks = 0
        self._store = store
        self._buffer = bytearray()
        self._state = "open"

    @property
    def closed(self) -> bool:
        return self._state != "open"

    def write(self, pcm: Pcm) -> None:
        if self._state != "open":
            raise StorageError(f"recording of meeting {self.meeting_id} is {self._state}")
        self._buffer += pcm
        self.bytes_written += len(pcm)
        if len(self._buffer) > self._store._memory_limit:
            self._spill(final=False)

    def close(self) -> None:
        """Spill what is left (the last chunk is marked as last) and complete the metadata."""
        if self._state != "open":
            return
        self._spill(final=True)
        self._state = "closed"
        self._store._finish(self)

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _spill(self, *, final: bool) -> None:
        """Write whole chunks from the buffer; when final, the remainder too (an empty last chunk if
        nothing is left, so the end of the recording is always authenticated)."""
        size = self._store._chunk_bytes
        end = len(self._buffer) if final else len(self._buffer) - len(self._buffer) % size
        count = -(-end // size) if end else int(final)
        done = 0
        try:
            with memoryview(self._buffer) as view:
                for k in range(count):
                    with view[k * size : min(end, (k + 1) * size)] as piece:
                        self._store._store_chunk(self, self.chunks + 1, piece, last=final and k == count - 1)
                        self.chunks += 1
                        done += len(piece)
        finally:
            del self._buffer[:done]  # what reached the disk; on failure the rest is still buffered

    def _discard(self) -> None:
        self._state = "deleted"
        self._buffer = bytearray()
