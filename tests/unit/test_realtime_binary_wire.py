"""The raw-PCM wire's pure parts: binary frame checks, the ``audio`` query value, and the
outbox's budget for binary audio frames."""

from __future__ import annotations

import pytest

from hark.transports.realtime import Outbox
from hark.transports.realtime_protocol import ProtocolError, audio_wire, binary_pcm


def test_binary_pcm_accepts_whole_samples() -> None:
    assert binary_pcm(b"", max_bytes=8) == b""
    assert binary_pcm(b"\x01\x00\x02\x00", max_bytes=8) == b"\x01\x00\x02\x00"


@pytest.mark.parametrize(
    ("frame", "words"),
    [(b"\x01\x02\x03", ("3 bytes", "even number")), (bytes(10), ("exceeds 8 bytes",))],
)
def test_binary_pcm_refuses_odd_and_oversized_frames(frame: bytes, words: tuple[str, ...]) -> None:
    with pytest.raises(ProtocolError) as info:
        binary_pcm(frame, max_bytes=8)
    assert info.value.code == "invalid_value" and info.value.param == "audio"
    assert all(w in info.value.message for w in words)


def test_audio_wire_values() -> None:
    assert audio_wire(None) == "json"
    assert audio_wire("") == "json"
    assert audio_wire("json") == "json"
    assert audio_wire("binary") == "binary"
    with pytest.raises(ProtocolError) as info:
        audio_wire("opus" * 100)
    assert len(info.value.message) < 200 and "audio=binary" in info.value.message


async def drain(outbox: Outbox) -> list[str | bytes]:
    out = []
    while outbox.pending:
        out.append(await outbox.get())
    return out


async def test_binary_audio_over_the_budget_is_dropped() -> None:
    outbox = Outbox(limit_bytes=16 * 1024)
    for _ in range(10):
        outbox.put_audio(bytes(4000), audio_of="resp_1")
    assert outbox.pending == 4
    assert outbox.budget.dropped_events == 6
    sent = await drain(outbox)
    assert all(isinstance(m, bytes) and len(m) == 4000 for m in sent)
    assert outbox.budget.queued == 0


async def test_control_events_evict_the_oldest_binary_audio() -> None:
    outbox = Outbox(limit_bytes=16 * 1024)
    for n in range(4):
        outbox.put_audio(bytes([n]) * 4000, audio_of="resp_1")
    outbox.put({"type": "hark.state", "state": "speaking", "pad": "x" * 3000})
    sent = await drain(outbox)
    assert [m[0] for m in sent if isinstance(m, bytes)] == [1, 2, 3]
    assert isinstance(sent[-1], str) and '"event_id":"event_1"' in sent[-1]
    assert not outbox.overflow.is_set()


async def test_barge_in_drops_queued_binary_audio_of_that_response_only() -> None:
    outbox = Outbox()
    outbox.put_audio(b"\x00\x00", audio_of="resp_1")
    outbox.put({"type": "response.done"})
    outbox.put_audio(b"\x01\x00", audio_of="resp_2")
    outbox.put_audio(b"\x02\x00", audio_of="resp_2")
    assert outbox.drop_audio("resp_2") == 2
    sent = await drain(outbox)
    assert sent[0] == b"\x00\x00" and isinstance(sent[1], str) and len(sent) == 2
    assert outbox.budget.queued == 0 and outbox.pending == 0
