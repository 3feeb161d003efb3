"""Meeting recordings and results at rest: one directory per meeting, and its metadata.

Audio is kept in memory while small, then spilled to ``<directory>/<meeting_id>/chunk-NNNNNN.bin``
in fixed-size chunks, so a long meeting never needs the whole recording in memory
(:mod:`~hark.meetings.recording_writer`). Every file except ``meta.json`` is sealed with the
configured keys, or holds raw bytes without keys (:mod:`~hark.meetings.sealing`). ``meta.json``
holds no audio or transcript: created time, chunk count, sizes, format, whether it is encrypted.
"""

from __future__ import annotations

import json
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from hark.meetings.recording_writer import RecordingWriter
from hark.meetings.sealing import Sealer, chunk_label, write_atomic
from hark.meetings.storage_errors import MeetingNotFound, StorageError, TamperedData

_MEETING_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_META = "meta.json"
_RESULT = "result.bin"
_META_VERSION = 1
_DAY_S = 86_400.0
_SAMPLE_WIDTH = 2
"""PCM16: bytes per sample and channel."""


def validate_meeting_id(meeting_id: str) -> str:
    """The id itself when it is 1-64 of ``A-Z a-z 0-9 _ -`` (so it is a safe directory name)."""
    if _MEETING_ID.fullmatch(meeting_id) is None:
        raise ValueError(f"invalid meeting id {meeting_id[:80]!r}: use 1-64 of A-Z a-z 0-9 _ -")
    return meeting_id


def _chunk_name(index: int) -> str:
    return f"chunk-{index:06d}.bin"


class MeetingStore:
    """Recordings and results of meetings under ``directory``, one subdirectory (mode 0700) each."""

    def __init__(
        self,
        directory: Path,
        *,
        keys: Sequence[str],
        retention_days: float,
        memory_limit_bytes: int = 4 * 1024 * 1024,
        chunk_bytes: int = 1024 * 1024,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if retention_days <= 0 or memory_limit_bytes < 0 or chunk_bytes <= 0:
            raise ValueError("retention_days and chunk_bytes must be positive, memory_limit_bytes >= 0")
        self._sealer = Sealer(keys)  # before touching the disk: a bad key creates nothing
        self._root = directory
        self._retention_s = retention_days * _DAY_S
        self._memory_limit = memory_limit_bytes
        self._chunk_bytes = chunk_bytes
        self._clock = clock
        self._writers: dict[str, RecordingWriter] = {}
        self._lock = threading.Lock()
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)

    @property
    def encrypted(self) -> bool:
        return self._sealer.encrypted

    # -- recording -------------------------------------------------------------------------------

    def open_recording(
        self, meeting_id: str, *, sample_rate: int = 16_000, channels: int = 1
    ) -> RecordingWriter:
        """A writer for a new recording of PCM16 little-endian audio; refuses an existing one."""
        path = self._dir(meeting_id)
        with self._lock:
            meta = self._read_meta(meeting_id)
            if meeting_id in self._writers or (meta is not None and meta.get("recording") != "none"):
                raise StorageError(f"meeting {meeting_id} already has a recording")
            self._check_mode(meeting_id, meta)
            path.mkdir(exist_ok=True, mode=0o700)
            meta = self._new_meta() if meta is None else meta
            meta["recording"] = "open"
            meta["format"] = {"encoding": "pcm_s16le", "sample_rate": sample_rate, "channels": channels}
            self._write_meta(meeting_id, meta)
            writer = RecordingWriter(self, meeting_id, frame_bytes=_SAMPLE_WIDTH * channels)
            self._writers[meeting_id] = writer
            return writer

    def read_audio(self, meeting_id: str) -> Iterator[bytes]:
        """The recording's PCM in stored chunks, in order; one chunk in memory at a time.

        Raises MeetingNotFound, StorageError (still recording, or stored in the other mode) at once,
        and TamperedData from the iterator when a chunk fails authentication or is missing."""
        meta = self._meta_for_read(meeting_id)
        if meta.get("recording") != "complete":
            raise StorageError(f"meeting {meeting_id} has no finished recording")
        count = meta.get("chunks")
        if not isinstance(count, int) or count < 1:
            raise TamperedData(f"meeting {meeting_id}: {_META} has no valid chunk count")
        return self._chunks(meeting_id, count)

    def _chunks(self, meeting_id: str, count: int) -> Iterator[bytes]:
        for index in range(1, count + 1):
            path = self._dir(meeting_id) / _chunk_name(index)
            try:
                stored = path.read_bytes()
            except FileNotFoundError:
                raise TamperedData(f"meeting {meeting_id}: {path.name} is missing") from None
            label = chunk_label(meeting_id, index, last=index == count)
            yield self._sealer.unseal(label, stored, f"meeting {meeting_id}: {path.name}")

    # -- results ---------------------------------------------------------------------------------

    def save_result(self, meeting_id: str, result: dict[str, Any]) -> None:
        """Store the meeting's result as JSON, encrypted like the audio."""
        data = json.dumps(result, ensure_ascii=False, separators=(",", ":")).encode()
        with self._lock:
            meta = self._read_meta(meeting_id)
            self._check_mode(meeting_id, meta)
            self._dir(meeting_id).mkdir(exist_ok=True, mode=0o700)
            if meta is None:
                self._write_meta(meeting_id, self._new_meta())
            write_atomic(self._dir(meeting_id) / _RESULT, self._sealer.seal(f"{meeting_id}/result", data))

    def load_result(self, meeting_id: str) -> dict[str, Any] | None:
        """The stored result; None when the meeting or its result does not exist."""
        path = self._dir(meeting_id) / _RESULT
        if not path.exists():
            return None
        self._meta_for_read(meeting_id)
        plain = self._sealer.unseal(
            f"{meeting_id}/result", path.read_bytes(), f"meeting {meeting_id}: {_RESULT}"
        )
        result = json.loads(plain)
        if not isinstance(result, dict):
            raise StorageError(f"meeting {meeting_id}: {_RESULT} is not a JSON object")
        return result

    # -- housekeeping ----------------------------------------------------------------------------

    def metadata(self, meeting_id: str) -> dict[str, Any] | None:
        """``meta.json`` (created, recording state, chunks, bytes, samples, format); None if absent."""
        return self._read_meta(meeting_id)

    def list_ids(self) -> list[str]:
        if not self._root.is_dir():
            return []
        return sorted(p.name for p in self._root.iterdir() if p.is_dir() and _MEETING_ID.fullmatch(p.name))

    def delete(self, meeting_id: str) -> bool:
        """Remove the meeting's audio, result and metadata; an open recording is discarded."""
        self._dir(meeting_id)
        with self._lock:
            return self._delete_locked(meeting_id)

    def sweep(self) -> int:
        """Delete meetings created more than ``retention_days`` ago (not ones still recording)."""
        cutoff = self._clock() - self._retention_s
        removed = 0
        for meeting_id in self.list_ids():
            with self._lock:
                if meeting_id not in self._writers and self._created(meeting_id) < cutoff:
                    removed += self._delete_locked(meeting_id)
        return removed

    # -- internals -------------------------------------------------------------------------------

    def _dir(self, meeting_id: str) -> Path:
        return self._root / validate_meeting_id(meeting_id)

    def _delete_locked(self, meeting_id: str) -> bool:
        writer = self._writers.pop(meeting_id, None)
        if writer is not None:
            writer._discard()
        path = self._dir(meeting_id)
        if not path.exists():
            return False
        shutil.rmtree(path)
        return True

    def _created(self, meeting_id: str) -> float:
        meta = self._read_meta(meeting_id)
        if meta is not None and isinstance(meta.get("created"), int | float):
            return float(meta["created"])
        # No usable metadata (a crash before it was written): the newest file's age.
        path = self._dir(meeting_id)
        try:
            return max(p.stat().st_mtime for p in [path, *path.iterdir()])
        except OSError:
            return self._clock()

    def _new_meta(self) -> dict[str, Any]:
        return {
            "version": _META_VERSION,
            "created": self._clock(),
            "encrypted": self.encrypted,
            "recording": "none",
            "chunks": 0,
            "bytes": 0,
            "samples": 0,
            "format": None,
        }

    def _read_meta(self, meeting_id: str) -> dict[str, Any] | None:
        path = self._dir(meeting_id) / _META
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return meta if isinstance(meta, dict) else None

    def _write_meta(self, meeting_id: str, meta: dict[str, Any]) -> None:
        write_atomic(self._dir(meeting_id) / _META, json.dumps(meta, indent=2).encode())

    def _meta_for_read(self, meeting_id: str) -> dict[str, Any]:
        meta = self._read_meta(meeting_id)
        if meta is None:
            if self._dir(meeting_id).exists():
                raise StorageError(f"meeting {meeting_id} has no readable {_META}")
            raise MeetingNotFound(f"no meeting {meeting_id}")
        self._check_mode(meeting_id, meta)
        return meta

    def _check_mode(self, meeting_id: str, meta: dict[str, Any] | None) -> None:
        """Fail closed: never read or add plaintext beside encryption, nor tokens without keys."""
        if meta is None or meta.get("encrypted") is self.encrypted:
            return
        if self.encrypted:
            raise StorageError(
                f"meeting {meeting_id} was stored without encryption; not used while keys are set"
            )
        raise StorageError(
            f"meeting {meeting_id} is encrypted and no meetings.encryption_keys are configured"
        )

    def _store_chunk(self, writer: RecordingWriter, index: int, data: memoryview, *, last: bool) -> None:
        sealed = self._sealer.seal(chunk_label(writer.meeting_id, index, last=last), data)
        with self._lock:  # so a concurrent delete or sweep never races a chunk onto the disk
            if self._writers.get(writer.meeting_id) is not writer:
                raise StorageError(f"recording of meeting {writer.meeting_id} was deleted")
            write_atomic(self._dir(writer.meeting_id) / _chunk_name(index), sealed)

    def _finish(self, writer: RecordingWriter) -> None:
        with self._lock:
            if self._writers.get(writer.meeting_id) is not writer:
                return  # deleted meanwhile
            del self._writers[writer.meeting_id]
            meta = self._read_meta(writer.meeting_id) or self._new_meta()
            meta.update(
                recording="complete",
                chunks=writer.chunks,
                bytes=writer.bytes_written,
                samples=writer.bytes_written // writer.frame_bytes,
            )
            self._write_meta(writer.meeting_id, meta)
