"""Where meeting recordings and results live, and for how long: the (encrypted) store on disk,
results that could not be stored kept in memory, and the retention sweep.

A stored result carries its owner (``OWNER_FIELD``), never returned by the API: for any other
owner the meeting does not exist.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import re
from collections.abc import Callable, Iterator
from typing import Any

from hark.config import MeetingSettings
from hark.meetings.meeting import RATE, MeetingRefused
from hark.meetings.models import MeetingResult
from hark.meetings.recording_writer import RecordingWriter
from hark.meetings.storage import MeetingStore
from hark.meetings.storage_errors import RecordingRefused, StorageError

log = logging.getLogger("hark.meetings")

SWEEP_INTERVAL_S = 3600.0
UNSAVED_KEPT = 100

_MEETING_ID = re.compile(r"mtg_[0-9a-f]{24}")
OWNER_FIELD = "owner"
"""Where a stored result keeps its owner (never returned by the API)."""
LEGACY_OWNER = "anonymous"
"""Results stored before meetings had owners: readable only while auth is off."""


def _valid_id(meeting_id: str) -> bool:
    return _MEETING_ID.fullmatch(meeting_id) is not None


class Results:
    def __init__(self) -> None:
        self.store: MeetingStore | None = None
        self.store_error: str | None = None
        self._unsaved: collections.OrderedDict[str, dict[str, Any]] = collections.OrderedDict()
        self._sweeper: asyncio.Task[None] | None = None

    async def open(self, meetings: MeetingSettings) -> None:
        """Open the store and start the retention sweep; a store that cannot be used leaves
        ``store_error`` for every meeting that tries to start."""
        try:
            self.store = await asyncio.to_thread(
                MeetingStore,
                meetings.data_dir,
                keys=[key.get_secret_value() for key in meetings.encryption_keys],
                retention_days=meetings.retention_days,
                memory_limit_bytes=int(meetings.memory_buffer_mb * 1024 * 1024),
            )
        except RecordingRefused as exc:
            self.store_error = str(exc)
            log.error("meetings cannot be recorded: an encryption key is invalid")
        except (OSError, StorageError) as exc:
            self.store_error = f"meetings.data_dir {meetings.data_dir} cannot be used ({exc})"
            log.error("meetings cannot be recorded: the data directory is not usable")
        else:
            self._sweeper = asyncio.create_task(self._sweep_forever(), name="hark-meetings-sweeper")

    async def aclose(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper

    async def _sweep_forever(self) -> None:
        while True:
            store = self.store
            if store is not None:
                try:
                    removed = await asyncio.to_thread(store.sweep)
                except (OSError, StorageError) as exc:
                    log.warning("retention sweep failed", extra={"error": type(exc).__name__})
                else:
                    if removed:
                        log.info("expired meetings deleted", extra={"meetings": removed})
            await asyncio.sleep(SWEEP_INTERVAL_S)

    def check_open(self) -> MeetingStore:
        if self.store is None:
            raise MeetingRefused(self.store_error or "meetings cannot be recorded", code="recording_refused")
        return self.store

    async def open_recording(self, meeting_id: str) -> RecordingWriter:
        store = self.check_open()
        try:
            return await asyncio.to_thread(store.open_recording, meeting_id, sample_rate=RATE)
        except RecordingRefused as exc:
            raise MeetingRefused(str(exc), code="recording_refused") from None
        except (OSError, StorageError) as exc:
            raise MeetingRefused(f"the recording cannot be stored: {exc}", code="storage_error") from None

    def audio_reader(self, meeting_id: str) -> Callable[[], Iterator[bytes]] | None:
        """What diarisation reads the whole recording with; None without a store."""
        store = self.store
        if store is None:
            return None

        def audio() -> Iterator[bytes]:
            return store.read_audio(meeting_id)

        return audio

    async def save(self, result: MeetingResult, owner: str) -> None:
        data = {**result.model_dump(mode="json"), OWNER_FIELD: owner}
        try:
            if self.store is None:
                raise StorageError(self.store_error or "no store")
            await asyncio.to_thread(self.store.save_result, result.meeting_id, data)
        except (OSError, StorageError) as exc:
            log.error(
                "the meeting result could not be stored; kept in memory",
                extra={"meeting": result.meeting_id, "error": type(exc).__name__},
            )
            result.error = f"the result could not be stored: {exc}"
            self._unsaved[result.meeting_id] = {**result.model_dump(mode="json"), OWNER_FIELD: owner}
            while len(self._unsaved) > UNSAVED_KEPT:
                self._unsaved.popitem(last=False)

    async def load(self, meeting_id: str, owner: str) -> dict[str, Any] | None:
        """The stored result; None when unknown or not ``owner``'s. Raises StorageError when it
        cannot be read."""
        result = self._unsaved.get(meeting_id)
        if result is None and self.store is not None and _valid_id(meeting_id):
            result = await asyncio.to_thread(self.store.load_result, meeting_id)
        if result is None or result.get(OWNER_FIELD, LEGACY_OWNER) != owner:
            return None
        return {k: v for k, v in result.items() if k != OWNER_FIELD}

    async def delete(self, meeting_id: str) -> bool:
        """Remove the meeting's audio and result (the caller checked its owner)."""
        dropped = self._unsaved.pop(meeting_id, None) is not None
        if self.store is None or not _valid_id(meeting_id):
            return dropped
        removed = await asyncio.to_thread(self.store.delete, meeting_id)
        return removed or dropped
