"""The pure parts of the hardening against tenant leaks and exhaustion (issue 12): decoded-size
caps, the pre-auth budget, per-tenant budgets, tenant-bound session state, structural log
redaction, and the settings that switch the API docs off beyond loopback."""

from __future__ import annotations

import io
import logging
import time

import numpy as np
import pytest

from hark.app import api_docs
from hark.audio import AudioFormatError, AudioTooLong, decode_audio_file
from hark.config import Settings
from hark.security import TokenIssuer
from hark.security.auth import KeyRing, tenant_of, verify_credential
from hark.security.budget import BudgetExceeded, TenantBudget
from hark.security.loghygiene import MeetingIdFilter, WireRedactionFilter
from hark.security.slots import PreAuthBudget
from hark.sessionstore.memory import MemorySessionStore
from hark.sessionstore.resume import OwnedStore, issue, resume
from hark.sessionstore.store import HistoryEntry, SessionState


def silent_flac(seconds: float, rate: int = 16_000, *, hide_length: bool = False) -> bytes:
    """A FLAC of silence: a few kilobytes per hour. ``hide_length`` zeroes the sample count in
    STREAMINFO ("unknown", which FLAC allows), so only decoding can tell how long it is."""
    import av

    out = io.BytesIO()
    with av.open(out, mode="w", format="flac") as container:
        stream = container.add_stream("flac", rate=rate, layout="mono")
        frame_samples = 4608
        zeros = np.zeros((1, frame_samples), dtype=np.int16)
        for start in range(0, int(seconds * rate), frame_samples):
            frame = av.AudioFrame.from_ndarray(zeros, format="s16", layout="mono")
            frame.sample_rate = rate
            frame.pts = start
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    data = bytearray(out.getvalue())
    if hide_length:
        # "fLaC", a 4-byte block header, then STREAMINFO: 10 bytes of block/frame sizes, then 64
        # bits of rate (20), channels (3), bits per sample (5) and total samples (36).
        packed = int.from_bytes(data[18:26], "big")
        data[18:26] = (packed & ~((1 << 36) - 1)).to_bytes(8, "big")
    return bytes(data)


# -- 1. decoded size ---------------------------------------------------------------------------


def test_a_file_declaring_more_than_the_cap_is_refused_before_decoding() -> None:
    bomb = silent_flac(1800)  # half an hour of silence
    started = time.perf_counter()
    with pytest.raises(AudioTooLong) as refused:
        decode_audio_file(bomb, 16_000, max_seconds=60)
    took = time.perf_counter() - started
    print(f"\n{len(bomb)} bytes declaring 1800 s: refused in {took * 1000:.1f} ms")
    assert refused.value.max_seconds == 60
    assert isinstance(refused.value, AudioFormatError)
    assert took < 1.0


def test_a_file_hiding_its_length_is_stopped_while_decoding() -> None:
    bomb = silent_flac(300, hide_length=True)
    started = time.perf_counter()
    with pytest.raises(AudioTooLong):
        decode_audio_file(bomb, 16_000, max_seconds=20)
    took = time.perf_counter() - started
    print(f"\n{len(bomb)} bytes of 300 s with no declared length: refused in {took * 1000:.1f} ms")
    # Decoding stopped near the cap rather than going through all 300 s.
    assert took < 2.0


def test_audio_within_the_cap_decodes_whole() -> None:
    audio = decode_audio_file(silent_flac(3, hide_length=True), 16_000, max_seconds=5)
    assert abs(audio.size - 3 * 16_000) <= 4608


# -- 4. pre-auth budget ------------------------------------------------------------------------


def test_the_pre_auth_budget_limits_each_address_and_the_total() -> None:
    budget = PreAuthBudget(per_address=2, total=3)
    a1, a2 = budget.acquire("a"), budget.acquire("a")
    assert a1 is not None and a2 is not None
    assert budget.acquire("a") is None  # per address
    b1 = budget.acquire("b")
    assert b1 is not None
    assert budget.acquire("c") is None  # in all
    a1.release()
    a1.release()  # idempotent
    assert budget.current == 2
    assert budget.acquire("c") is not None
    assert budget.refused == 2


# -- 6. per-tenant cost ------------------------------------------------------------------------


def test_tenant_budgets_count_running_jobs_and_cost() -> None:
    now = [0.0]
    budget = TenantBudget(
        max_jobs=2, per_minute={"tts_chars": 6000.0, "stt_audio_s": 60.0}, clock=lambda: now[0]
    )
    jobs = [budget.start("a"), budget.start("a")]
    with pytest.raises(BudgetExceeded) as busy:
        budget.start("a")
    assert busy.value.code == "too_many_jobs"
    assert budget.start("b").released is False  # another tenant is not affected
    jobs[0].release()
    budget.start("a")
    budget.charge("a", "tts_chars", 4096)
    with pytest.raises(BudgetExceeded) as spent:
        budget.charge("a", "tts_chars", 4096)
    assert spent.value.code == "budget_exceeded"
    assert 20 < spent.value.retry_after <= 41  # 2192 characters at 100 per second
    budget.charge("b", "tts_chars", 4096)  # b has its own budget
    now[0] += 41
    budget.charge("a", "tts_chars", 4096)


# -- 2./3. tenants -----------------------------------------------------------------------------


async def test_keys_of_one_tenant_share_it_and_tokens_carry_it() -> None:
    settings = Settings(
        security={
            "api_keys": [
                "plain-key-0001",
                {"key": "beta-key-0001", "tenant": "beta"},
                {"key": "beta-key-0002", "tenant": "beta"},
            ],
            "token_secret": "s" * 48,
        }
    )
    ring = KeyRing.api_keys(settings)
    issuer = TokenIssuer("s" * 48)
    plain = await verify_credential("plain-key-0001", keys=ring, tokens=issuer, kind="realtime")
    first = await verify_credential("beta-key-0001", keys=ring, tokens=issuer, kind="realtime")
    second = await verify_credential("beta-key-0002", keys=ring, tokens=issuer, kind="realtime")
    assert first.owner == second.owner == "beta" and first.id != second.id
    assert plain.owner == tenant_of(settings.security.api_keys[0]) and plain.owner.startswith("key_")
    assert "plain-key" not in plain.owner
    minted = issuer.mint("realtime:sess_x", tenant=first.owner)
    via_token = await verify_credential(minted.value, keys=ring, tokens=issuer, kind="realtime")
    assert via_token.kind == "token" and via_token.owner == "beta"


async def test_session_state_is_visible_only_to_its_owner() -> None:
    store = MemorySessionStore(state_ttl_s=60)
    mine, theirs = OwnedStore(store, "tenant-a"), OwnedStore(store, "tenant-b")
    state = SessionState(history=[HistoryEntry(item_id="i1", role="user", content="account 1234")])
    await mine.save("sess_a", state)
    assert (await store.load("sess_a")).owner == "tenant-a"  # type: ignore[union-attr]
    assert await theirs.load("sess_a") is None
    token = await issue(mine, "sess_a", 60)
    assert await resume(theirs, token.token, new_session_id="sess_b", ttl_s=60) is None
    # The state is untouched: the other tenant neither moved nor deleted it.
    assert (await mine.load("sess_a")) is not None
    again = await issue(mine, "sess_a", 60)
    resumed = await resume(mine, again.token, new_session_id="sess_c", ttl_s=60)
    assert resumed is not None and resumed.state.history[0].content == "account 1234"


# -- 8. logs -----------------------------------------------------------------------------------


def _record(msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("uvicorn.error", logging.DEBUG, __file__, 1, msg, args, None)


def test_wire_dumps_are_redacted_by_structure() -> None:
    from websockets.frames import Frame, Opcode

    wire = WireRedactionFilter()
    key = "plainish-credential-with-no-known-shape"
    lines = [
        _record("< %s: %s", "Sec-WebSocket-Protocol", f"realtime, openai-insecure-api-key.{key}"),
        _record("< %s: %s", "Authorization", f"Bearer {key}"),
        _record("< %s: %s", "Cookie", f"session={key}"),
        _record("< %s", Frame(Opcode.TEXT, b'{"type":"hark.auth","token":"' + key.encode() + b'"}')),
        _record("> %s", Frame(Opcode.TEXT, b'{"transcript":"my account number is 1234"}')),
        _record("offered %s", [f"openai-insecure-api-key.{key}"]),
    ]
    out = []
    for record in lines:
        assert wire.filter(record)
        out.append(record.getMessage())
    text = "\n".join(out)
    print("\n" + text)
    assert key not in text and "1234" not in text
    assert "Sec-WebSocket-Protocol: realtime, openai-insecure-api-key.[redacted]" in text
    assert "TEXT [" in text


def test_meeting_ids_become_digests() -> None:
    ids = MeetingIdFilter()
    meeting_id = "mtg_" + "ab12" * 6
    record = logging.LogRecord("hark.meetings", logging.INFO, __file__, 1, "meeting %s", (meeting_id,), None)
    record.meeting = meeting_id
    ids.filter(record)
    assert meeting_id not in record.getMessage() and meeting_id not in record.meeting
    assert record.meeting == ids.digest(meeting_id) and record.meeting.startswith("mtg#")


# -- 9. docs -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "setting", "served"),
    [
        ("127.0.0.1", None, True),
        ("0.0.0.0", None, False),
        ("::", None, False),
        ("0.0.0.0", True, True),
        ("127.0.0.1", False, False),
    ],
)
def test_api_docs_are_off_beyond_loopback_by_default(host: str, setting: bool | None, served: bool) -> None:
    assert api_docs(Settings(server={"host": host, "api_docs": setting})) is served


async def test_the_byte_gate_holds_the_reader_until_there_is_room() -> None:
    import asyncio

    from hark.security.limits import ByteGate

    gate = ByteGate(1000)
    await gate.enter(600)
    await gate.enter(400)
    blocked = asyncio.create_task(gate.enter(10))
    await asyncio.sleep(0.01)
    assert not blocked.done() and gate.queued == 1000
    await gate.leave(600)
    await asyncio.wait_for(blocked, 1)
    assert gate.queued == 410 and gate.peak == 1000
    await gate.leave(410)
    await gate.enter(5000)  # larger than the limit, alone: passes
    assert gate.queued == 5000
