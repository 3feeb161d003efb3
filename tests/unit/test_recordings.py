"""Meeting recordings at rest (hark.meetings.storage, .sealing, .recording_writer): chunked spill,
Fernet encryption and rotation, fail-closed keys, tamper detection, retention and deletion."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
import struct
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet, InvalidToken

from hark.errors import HarkError
from hark.meetings import sealing, storage
from hark.meetings.storage import MeetingStore
from hark.meetings.storage_errors import MeetingNotFound, RecordingRefused, StorageError, TamperedData

KEY_A = Fernet.generate_key().decode()
KEY_B = Fernet.generate_key().decode()
FRAME_BYTES = 640
"""20 ms of 16 kHz mono PCM16."""
HOUR_FRAMES = 60 * 60 * 50
MB = 1024 * 1024
WAV_HEADER = b"RIFF" + struct.pack("<I", 36 + HOUR_FRAMES * FRAME_BYTES) + b"WAVEfmt " + bytes(28)
"""What a client-side WAV would start with: it must never show up in plaintext on disk."""


def frame(index: int) -> bytes:
    """Deterministic, distinct audio for each frame, regenerated on demand (never all held at once)."""
    return hashlib.shake_128(index.to_bytes(4, "big")).digest(FRAME_BYTES)


def store(tmp_path: Path, keys: list[str] | None = None, **options: Any) -> MeetingStore:
    return MeetingStore(
        tmp_path / "meetings", keys=[KEY_A] if keys is None else keys, retention_days=30, **options
    )


def record(meetings: MeetingStore, meeting_id: str, frames: int) -> bytes:
    with meetings.open_recording(meeting_id) as writer:
        for i in range(frames):
            writer.write(frame(i))
    return b"".join(frame(i) for i in range(frames))


def stored_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def assert_fernet_token(path: Path, key: str) -> bytes:
    data = path.read_bytes()
    assert base64.urlsafe_b64decode(data)[0] == 0x80, f"{path.name} is not a Fernet token"
    return Fernet(key).decrypt(data)


def test_errors_are_hark_errors() -> None:
    for error in (StorageError, MeetingNotFound, RecordingRefused, TamperedData):
        assert issubclass(error, HarkError)
    assert issubclass(TamperedData, StorageError) and issubclass(RecordingRefused, StorageError)


@pytest.mark.parametrize("keys", [[KEY_A], []], ids=["encrypted", "plaintext"])
def test_round_trip(tmp_path: Path, keys: list[str]) -> None:
    meetings = store(tmp_path, keys, memory_limit_bytes=4096, chunk_bytes=3000)
    audio = record(meetings, "m1", 50)  # 32,000 bytes: ten full chunks and a partial last one
    assert meetings.encrypted is bool(keys)
    chunks = list(meetings.read_audio("m1"))
    assert b"".join(chunks) == audio
    assert [len(c) for c in chunks] == [3000] * 10 + [2000]
    meta = meetings.metadata("m1")
    assert meta is not None
    assert meta["encrypted"] is bool(keys) and meta["recording"] == "complete"
    assert (meta["chunks"], meta["bytes"], meta["samples"]) == (11, 32_000, 16_000)
    assert meta["format"] == {"encoding": "pcm_s16le", "sample_rate": 16_000, "channels": 1}
    assert meetings.list_ids() == ["m1"]

    result = {"meeting_id": "m1", "summary": "Ship it on Friday.", "transcript": [{"text": "héllo"}]}
    meetings.save_result("m1", result)
    assert meetings.load_result("m1") == result
    assert meetings.load_result("absent") is None

    files = {p.name for p in stored_files(tmp_path)}
    assert files == {"meta.json", "result.bin", *(f"chunk-{i:06d}.bin" for i in range(1, 12))}
    if not keys:
        assert (tmp_path / "meetings/m1/chunk-000001.bin").read_bytes() == audio[:3000]


def test_short_recording_stays_in_memory_until_close(tmp_path: Path) -> None:
    meetings = store(tmp_path)
    writer = meetings.open_recording("short")
    writer.write(frame(0))
    assert not list((tmp_path / "meetings/short").glob("chunk-*"))
    writer.close()
    writer.close()  # idempotent
    assert writer.bytes_written == FRAME_BYTES and writer.closed
    assert b"".join(meetings.read_audio("short")) == frame(0)
    with pytest.raises(StorageError):
        writer.write(frame(1))


def test_empty_recording(tmp_path: Path) -> None:
    meetings = store(tmp_path)
    meetings.open_recording("empty").close()
    assert list(meetings.read_audio("empty")) == [b""]


def test_files_are_private(tmp_path: Path) -> None:
    meetings = store(tmp_path, memory_limit_bytes=0, chunk_bytes=1000)
    record(meetings, "m1", 5)
    meetings.save_result("m1", {"ok": True})
    assert stat.S_IMODE((tmp_path / "meetings").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "meetings/m1").stat().st_mode) == 0o700
    for path in stored_files(tmp_path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name
        assert not path.name.endswith(".tmp")


def test_an_hour_is_chunked_encrypted_and_bounded_in_memory(tmp_path: Path) -> None:
    """60 minutes of 16 kHz PCM16 in 20 ms frames (~115 MB): peak traced allocations stay far below the
    recording's size while writing and reading, every stored file is a Fernet token, and no plaintext
    audio reaches the disk."""
    meetings = store(tmp_path)
    written = hashlib.sha256(WAV_HEADER)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        started = time.perf_counter()
        with meetings.open_recording("hour") as writer:
            writer.write(WAV_HEADER)
            for i in range(HOUR_FRAMES):
                pcm = frame(i)
                written.update(pcm)
                writer.write(pcm)
        elapsed = time.perf_counter() - started
        write_peak = tracemalloc.get_traced_memory()[1]

        tracemalloc.reset_peak()
        read = hashlib.sha256()
        for chunk in meetings.read_audio("hour"):
            read.update(chunk)
        read_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    total = len(WAV_HEADER) + HOUR_FRAMES * FRAME_BYTES
    assert writer.bytes_written == total
    assert read.digest() == written.digest()
    assert write_peak < 16 * MB, f"write peak {write_peak / MB:.1f} MB"
    assert read_peak < 16 * MB, f"read peak {read_peak / MB:.1f} MB"

    files = stored_files(tmp_path)
    chunks = [p for p in files if p.name.startswith("chunk-")]
    assert len(chunks) == -(-total // MB)
    stored = sum(p.stat().st_size for p in chunks)
    print(
        f"\n60 min: {total / MB:.1f} MB in {elapsed:.1f} s ({total / MB / elapsed:.0f} MB/s traced),"
        f" write peak {write_peak / MB:.1f} MB, read peak {read_peak / MB:.1f} MB,"
        f" on disk {stored / MB:.1f} MB (+{(stored / total - 1) * 100:.1f}%)"
    )

    probes = [WAV_HEADER[:16], b"WAVEfmt "] + [
        frame(i)[:64] for i in (0, 1, 777, HOUR_FRAMES // 2, HOUR_FRAMES - 1)
    ]
    probes += [frame(i)[300:364] for i in (5, 123_456)]
    for path in files:
        data = path.read_bytes()
        assert not data.startswith(b"RIFF")
        for probe in probes:
            assert probe not in data, f"plaintext audio in {path.name}"
        if path.name != "meta.json":
            assert_fernet_token(path, KEY_A)
    meta = json.loads((tmp_path / "meetings/hour/meta.json").read_text())
    assert set(meta) == {
        "version",
        "created",
        "encrypted",
        "recording",
        "chunks",
        "bytes",
        "samples",
        "format",
    }


def test_plaintext_scan_would_find_unencrypted_audio(tmp_path: Path) -> None:
    """The probe above is meaningful: without keys the same scan finds the audio."""
    meetings = store(tmp_path, [])
    with meetings.open_recording("plain") as writer:
        writer.write(WAV_HEADER)
        writer.write(frame(0))
    data = (tmp_path / "meetings/plain/chunk-000001.bin").read_bytes()
    assert data.startswith(b"RIFF") and b"WAVEfmt " in data and frame(0)[:64] in data


def test_results_are_encrypted(tmp_path: Path) -> None:
    meetings = store(tmp_path)
    meetings.save_result("m1", {"summary": "the secret plan"})
    raw = (tmp_path / "meetings/m1/result.bin").read_bytes()
    assert b"secret" not in raw
    assert b"secret plan" in assert_fernet_token(tmp_path / "meetings/m1/result.bin", KEY_A)
    meta = meetings.metadata("m1")
    assert meta is not None and meta["recording"] == "none" and meta["encrypted"] is True
    # A recording may follow a result (and vice versa).
    record(meetings, "m1", 3)
    assert meetings.load_result("m1") == {"summary": "the secret plan"}


def flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("offset", [0, 20, 500, -3])
def test_one_flipped_byte_is_detected(tmp_path: Path, offset: int) -> None:
    meetings = store(tmp_path, chunk_bytes=1000, memory_limit_bytes=0)
    record(meetings, "m1", 5)
    flip_byte(tmp_path / "meetings/m1/chunk-000002.bin", offset)
    chunks = meetings.read_audio("m1")
    assert next(chunks) == record_bytes(5)[:1000]  # chunks before the damage still read
    with pytest.raises(TamperedData, match="chunk-000002"):
        next(chunks)


def record_bytes(frames: int) -> bytes:
    return b"".join(frame(i) for i in range(frames))


def test_flipped_result_is_detected(tmp_path: Path) -> None:
    meetings = store(tmp_path)
    meetings.save_result("m1", {"summary": "x" * 100})
    flip_byte(tmp_path / "meetings/m1/result.bin", 60)
    with pytest.raises(TamperedData):
        meetings.load_result("m1")


def test_moved_swapped_or_dropped_chunks_are_detected(tmp_path: Path) -> None:
    meetings = store(tmp_path, chunk_bytes=1000, memory_limit_bytes=0)
    record(meetings, "m1", 5)
    record(meetings, "m2", 5)
    m1, m2 = tmp_path / "meetings/m1", tmp_path / "meetings/m2"

    # Reordered within a meeting.
    a, b = (m1 / "chunk-000001.bin").read_bytes(), (m1 / "chunk-000002.bin").read_bytes()
    (m1 / "chunk-000001.bin").write_bytes(b)
    (m1 / "chunk-000002.bin").write_bytes(a)
    with pytest.raises(TamperedData, match="moved"):
        list(meetings.read_audio("m1"))

    # Copied from another meeting.
    (m1 / "chunk-000001.bin").write_bytes(a)
    (m1 / "chunk-000002.bin").write_bytes((m2 / "chunk-000002.bin").read_bytes())
    with pytest.raises(TamperedData, match="moved"):
        list(meetings.read_audio("m1"))

    # The end cut off, with the metadata edited to match.
    meta = json.loads((m2 / "meta.json").read_text())
    meta["chunks"] -= 1
    (m2 / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(TamperedData):
        list(meetings.read_audio("m2"))

    # A chunk file removed.
    meta["chunks"] += 1
    (m2 / "meta.json").write_text(json.dumps(meta))
    (m2 / "chunk-000003.bin").unlink()
    with pytest.raises(TamperedData, match="missing"):
        list(meetings.read_audio("m2"))

    meta["chunks"] = "many"
    (m2 / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(TamperedData, match="chunk count"):
        meetings.read_audio("m2")


def test_key_rotation(tmp_path: Path) -> None:
    old = store(tmp_path, [KEY_A], chunk_bytes=1000, memory_limit_bytes=0)
    audio = record(old, "before", 5)
    old.save_result("before", {"n": 1})

    rotated = store(tmp_path, [KEY_B, KEY_A], chunk_bytes=1000, memory_limit_bytes=0)
    assert b"".join(rotated.read_audio("before")) == audio
    assert rotated.load_result("before") == {"n": 1}

    record(rotated, "after", 5)
    rotated.save_result("after", {"n": 2})
    for path in stored_files(tmp_path / "meetings/after"):
        if path.name != "meta.json":
            assert_fernet_token(path, KEY_B)  # the newest key encrypts
            with pytest.raises(InvalidToken):
                Fernet(KEY_A).decrypt(path.read_bytes())

    # Once the old key is dropped, what it encrypted no longer opens, and says why.
    only_new = store(tmp_path, [KEY_B])
    assert only_new.load_result("after") == {"n": 2}
    with pytest.raises(TamperedData, match="no longer configured"):
        list(only_new.read_audio("before"))


@pytest.mark.parametrize(
    "keys",
    [["not-a-key"], [""], [KEY_A, "not-a-key"], [KEY_A[:-4]], ["ключ"]],
    ids=["bad", "empty", "second", "short", "utf8"],
)
def test_invalid_key_refuses_and_creates_nothing(tmp_path: Path, keys: list[str]) -> None:
    with pytest.raises(RecordingRefused, match=r"encryption_keys\[\d\]") as refused:
        MeetingStore(tmp_path / "meetings", keys=keys, retention_days=30)
    assert f"[{len(keys) - 1}]" in str(refused.value)
    for key in keys:
        if key:
            assert key not in str(refused.value)
    assert not (tmp_path / "meetings").exists()
    assert list(tmp_path.iterdir()) == []


def test_a_single_key_string_is_not_mistaken_for_a_list(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        MeetingStore(tmp_path / "meetings", keys=KEY_A, retention_days=30)


def test_modes_never_mix(tmp_path: Path) -> None:
    """Fail closed: an encrypting store neither reads nor extends plaintext meetings, and a store
    without keys cannot read encrypted ones."""
    record(store(tmp_path, []), "plain", 3)
    record(store(tmp_path, [KEY_A]), "sealed", 3)
    keyed, keyless = store(tmp_path, [KEY_A]), store(tmp_path, [])
    with pytest.raises(StorageError, match="without encryption"):
        keyed.read_audio("plain")
    with pytest.raises(StorageError, match="without encryption"):
        keyed.save_result("plain", {"x": 1})
    with pytest.raises(StorageError, match=r"no meetings\.encryption_keys"):
        keyless.read_audio("sealed")
    assert not (tmp_path / "meetings/plain/result.bin").exists()


def test_unknown_and_unfinished_meetings(tmp_path: Path) -> None:
    meetings = store(tmp_path)
    with pytest.raises(MeetingNotFound):
        meetings.read_audio("nope")
    writer = meetings.open_recording("live")
    writer.write(frame(0))
    with pytest.raises(StorageError, match="no finished recording"):
        meetings.read_audio("live")
    with pytest.raises(StorageError, match="already has a recording"):
        meetings.open_recording("live")
    writer.close()
    with pytest.raises(StorageError, match="already has a recording"):
        meetings.open_recording("live")


def test_retention_sweep(tmp_path: Path) -> None:
    now = [1_000_000.0]
    meetings = store(tmp_path, clock=lambda: now[0])
    record(meetings, "old", 3)
    meetings.save_result("old-result-only", {"x": 1})
    still_recording = meetings.open_recording("old-but-live")
    now[0] += 20 * 86_400
    record(meetings, "recent", 3)
    now[0] += 11 * 86_400  # "old" is 31 days old, "recent" 11

    assert meetings.sweep() == 2
    assert meetings.list_ids() == ["old-but-live", "recent"]
    assert not (tmp_path / "meetings/old").exists()
    assert meetings.sweep() == 0

    still_recording.write(frame(0))
    still_recording.close()
    assert meetings.sweep() == 1  # closed now, and still past retention
    assert meetings.list_ids() == ["recent"]


def test_sweep_removes_a_crashed_recording_without_metadata(tmp_path: Path) -> None:
    meetings = store(tmp_path, clock=lambda: 100 * 86_400.0)
    crashed = tmp_path / "meetings/crashed"
    crashed.mkdir()
    (crashed / "chunk-000001.bin").write_bytes(b"x")
    for path in (crashed / "chunk-000001.bin", crashed):
        os.utime(path, (86_400.0, 86_400.0))
    assert meetings.sweep() == 1
    assert meetings.list_ids() == []


def test_a_failed_spill_loses_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A disk error surfaces as StorageError; the unwritten audio stays buffered for the next try."""
    meetings = store(tmp_path, chunk_bytes=1000, memory_limit_bytes=0)
    writer = meetings.open_recording("m1")
    real = sealing.write_atomic
    calls = 0

    def flaky(path: Path, data: sealing.Pcm) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise StorageError("disk full")
        real(path, data)

    monkeypatch.setattr(storage, "write_atomic", flaky)
    with pytest.raises(StorageError, match="disk full"):
        writer.write(record_bytes(4))  # 2,560 bytes: the second chunk fails
    assert writer.chunks == 1
    writer.close()
    assert b"".join(meetings.read_audio("m1")) == record_bytes(4)


def test_delete_removes_everything(tmp_path: Path) -> None:
    meetings = store(tmp_path, chunk_bytes=1000, memory_limit_bytes=0)
    record(meetings, "m1", 5)
    meetings.save_result("m1", {"x": 1})
    record(meetings, "m2", 1)
    assert meetings.delete("m1") is True
    assert not (tmp_path / "meetings/m1").exists()
    assert meetings.load_result("m1") is None and meetings.metadata("m1") is None
    with pytest.raises(MeetingNotFound):
        meetings.read_audio("m1")
    assert meetings.delete("m1") is False
    assert meetings.list_ids() == ["m2"]


def test_delete_discards_an_open_recording(tmp_path: Path) -> None:
    meetings = store(tmp_path, chunk_bytes=1000, memory_limit_bytes=0)
    writer = meetings.open_recording("live")
    writer.write(record_bytes(3))
    assert meetings.delete("live") is True
    with pytest.raises(StorageError, match="deleted"):
        writer.write(frame(0))
    writer.close()  # harmless
    assert not (tmp_path / "meetings/live").exists()
    record(meetings, "live", 1)  # the id can be used again


@pytest.mark.parametrize(
    "meeting_id", ["", ".", "..", "../etc", "a/b", "a\\b", "/abs", "a\n", "a b", "ä", "x" * 65, "a\x00"]
)
def test_unsafe_meeting_ids_are_rejected(tmp_path: Path, meeting_id: str) -> None:
    meetings = store(tmp_path)
    calls: list[Callable[[], object]] = [
        lambda: meetings.open_recording(meeting_id),
        lambda: meetings.read_audio(meeting_id),
        lambda: meetings.save_result(meeting_id, {}),
        lambda: meetings.load_result(meeting_id),
        lambda: meetings.delete(meeting_id),
        lambda: meetings.metadata(meeting_id),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="invalid meeting id"):
            call()
    assert stored_files(tmp_path) == []
