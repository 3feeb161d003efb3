"""The outbound reply track: 20 ms frames on the RTP clock, exact played counts, clear."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import numpy as np
import pytest

pytest.importorskip("aiortc")

from av import Packet

from hark.transports.webrtc.media import (
    DTX_AFTER_FRAMES,
    DTX_INTERVAL_FRAMES,
    FRAME_SAMPLES,
    RATE,
    Pacer,
    ReplyTrack,
    mono_pcm16,
)


def tone(ms: int, value: int = 1000) -> bytes:
    return np.full(RATE * ms // 1000, value, dtype="<i2").tobytes()


class Frame:
    """What the track handed its encoder: the PCM and its RTP time (no Opus in between)."""

    def __init__(self, pcm: bytes, pts: int) -> None:
        self.samples = np.frombuffer(pcm, dtype="<i2")
        self.pts = pts


def raw(pcm: bytes, pts: int) -> Packet[Any]:
    packet = Packet(pcm)
    packet.pts = pts
    return packet


async def frame(reply: ReplyTrack) -> Frame:
    packet = await reply.recv()
    assert packet.pts is not None
    return Frame(bytes(packet), packet.pts)


def track() -> tuple[ReplyTrack, list[tuple[str, str]]]:
    seconds = itertools.count(0, 1)  # a clock always late: recv never sleeps
    log: list[tuple[str, str]] = []
    reply = ReplyTrack(
        on_started=lambda r: log.append(("started", r)),
        on_stopped=lambda r: log.append(("stopped", r)),
        clock=lambda: float(next(seconds)),
        encode=raw,
    )
    return reply, log


async def test_frames_are_20_ms_on_the_rtp_clock_with_silence_between_replies() -> None:
    reply, log = track()
    silent = await frame(reply)
    assert len(silent.samples) == FRAME_SAMPLES and silent.pts == 0
    assert not silent.samples.any()
    reply.push("resp_1", "item_1", tone(50))
    frames = [await frame(reply) for _ in range(3)]
    assert [f.pts for f in frames] == [FRAME_SAMPLES, 2 * FRAME_SAMPLES, 3 * FRAME_SAMPLES]
    assert frames[0].samples.all() and frames[1].samples.all()
    assert frames[2].samples[: FRAME_SAMPLES // 2].all() and not frames[2].samples[FRAME_SAMPLES // 2 :].any()
    assert reply.played_ms("item_1") == pytest.approx(50.0)
    assert log == [("started", "resp_1")]
    reply.finish("resp_1")
    assert log == [("started", "resp_1"), ("stopped", "resp_1")]


async def test_clear_keeps_exactly_what_played_and_refuses_the_rest() -> None:
    reply, log = track()
    reply.push("resp_1", "item_1", tone(1000))
    for _ in range(7):
        await frame(reply)
    cut = reply.clear()
    assert list(cut) == ["item_1"]
    assert cut["item_1"][0] == "resp_1" and cut["item_1"][1] == pytest.approx(140.0)
    reply.push("resp_1", "item_1", tone(100))  # late audio of the cleared reply
    assert not reply.pending
    assert not (await frame(reply)).samples.any()
    assert log == [("started", "resp_1")]  # cleared, not stopped


async def test_hold_drops_the_unplayed_audio_but_not_the_reply() -> None:
    reply, log = track()
    reply.push("resp_1", "item_1", tone(200))
    for _ in range(3):
        await frame(reply)
    reply.hold()  # speech over the reply: nothing more of it plays while paused
    assert not reply.pending and not (await frame(reply)).samples.any()
    assert reply.played_ms("item_1") == pytest.approx(60.0)
    reply.push("resp_1", "item_1", tone(40))  # resumed from the playhead: same reply, no new start
    assert (await frame(reply)).samples.all()
    assert reply.played_ms("item_1") == pytest.approx(80.0)
    reply.finish("resp_1")
    await frame(reply)
    assert log == [("started", "resp_1"), ("stopped", "resp_1")]


def test_stereo_is_mixed_to_mono() -> None:
    from av import AudioFrame

    stereo = np.array([[100, 300] * 4], dtype="<i2")
    frame = AudioFrame.from_ndarray(stereo, format="s16", layout="stereo")
    assert np.frombuffer(mono_pcm16(frame), dtype="<i2").tolist() == [200] * 4


async def test_on_frame_sees_each_frame_with_reply_audio_as_it_goes_out() -> None:
    reply, _ = track()
    frames: list[bytes] = []
    reply.on_frame = frames.append
    await frame(reply)  # silence: nothing played, no reference
    assert frames == [] and not reply.busy
    reply.push("resp_1", "item_1", tone(30))
    assert reply.busy
    sent = [await frame(reply) for _ in range(3)]
    assert [len(f) for f in frames] == [FRAME_SAMPLES * 2] * 2  # the last frame was silence
    assert frames[0] == sent[0].samples.tobytes() and frames[1] == sent[1].samples.tobytes()
    assert reply.busy  # played out, but the response has not said it is finished
    reply.finish("resp_1")
    assert not reply.busy
    reply.push("resp_2", "item_2", tone(100))
    await frame(reply)
    reply.clear()
    assert not reply.busy


def test_the_pacer_keeps_frames_on_the_rtp_clock_however_late_it_wakes() -> None:
    pacer = Pacer()
    assert pacer.due() is None
    assert pacer.take(10.0) == 0
    assert pacer.due() == pytest.approx(10.02)
    assert pacer.take(10.025) == FRAME_SAMPLES  # woke 5 ms late: still the next on the clock
    assert pacer.due() == pytest.approx(10.04)
    assert pacer.take(10.5) == 2 * FRAME_SAMPLES  # the loop stalled: frames catch up
    assert pacer.due() == pytest.approx(10.06)


def test_the_pacer_re_anchors_when_a_frame_goes_out_early_or_after_a_gap() -> None:
    pacer = Pacer()
    pacer.take(10.0)
    pacer.take(10.02)
    # A reply 7 ms into the silent frame's 20 ms: out now, right after that frame on the RTP
    # clock (frames never overlap), and the next one 20 ms after now, not after the old tick.
    assert pacer.take(10.027, restart=True) == 2 * FRAME_SAMPLES
    assert pacer.due() == pytest.approx(10.047)
    assert pacer.take(10.047) == 3 * FRAME_SAMPLES
    # After 400 ms with nothing sent the RTP time follows the wall clock.
    assert pacer.take(10.447, restart=True) == 3 * FRAME_SAMPLES + RATE * 400 // 1000
    assert pacer.due() == pytest.approx(10.467)


async def test_a_reply_that_begins_during_silence_goes_out_at_once_and_paces_from_there() -> None:
    now = [0.0]
    reply = ReplyTrack(clock=lambda: now[0], encode=raw)
    await frame(reply)  # the first silent frame: the clock starts
    now[0] = 0.005
    waiting = asyncio.create_task(frame(reply))  # the next silent frame is due at 0.02
    await asyncio.sleep(0)
    assert not waiting.done()
    reply.push("resp_1", "item_1", tone(100))
    async with asyncio.timeout(5):  # the silent tick would have come after 15 ms of real time
        sent = await waiting
    assert sent.samples.all() and sent.pts == FRAME_SAMPLES
    assert reply.pacer.due() == pytest.approx(0.025)  # 20 ms after the reply began


async def test_a_playing_reply_is_not_hurried_by_more_audio() -> None:
    now = [0.0]
    reply = ReplyTrack(clock=lambda: now[0], encode=raw)
    reply.push("resp_1", "item_1", tone(20))
    await frame(reply)
    now[0] = 0.019  # the next frame is due in 1 ms
    waiting = asyncio.create_task(frame(reply))
    await asyncio.sleep(0)
    reply.push("resp_1", "item_1", tone(20))
    sent = await waiting
    assert sent.pts == FRAME_SAMPLES
    assert reply.pacer.due() == pytest.approx(0.04)  # still on the first frame's clock


async def silent_frames(reply: ReplyTrack, now: list[float], count: int) -> list[Frame]:
    """``count`` frames, each taken when the track says it is due (nothing waits)."""
    sent = []
    for _ in range(count):
        now[0] = reply.due if reply.due is not None else now[0]
        sent.append(await frame(reply))
    return sent


async def test_dtx_sends_settled_silence_every_400_ms_and_a_reply_at_once() -> None:
    now = [0.0]
    reply = ReplyTrack(clock=lambda: now[0], encode=raw)
    first = await silent_frames(reply, now, DTX_AFTER_FRAMES)
    assert [f.pts for f in first] == [i * FRAME_SAMPLES for i in range(DTX_AFTER_FRAMES)]
    last = now[0]
    assert reply.due == pytest.approx(last + 0.4)  # 500 ms of silence: one packet per 400 ms
    comfort = await silent_frames(reply, now, 3)
    assert not any(f.samples.any() for f in comfort)
    gap = DTX_INTERVAL_FRAMES * FRAME_SAMPLES
    assert [f.pts - first[-1].pts for f in comfort] == pytest.approx([gap, 2 * gap, 3 * gap], abs=1)
    # Audio starts 100 ms into a 400 ms wait: its first frame goes out then, and 20 ms follow.
    now[0] += 0.1
    waiting = asyncio.create_task(frame(reply))
    await asyncio.sleep(0)
    assert not waiting.done()
    reply.push("resp_1", "item_1", tone(60))
    async with asyncio.timeout(5):
        sent = await waiting
    assert sent.samples.all()
    assert sent.pts - comfort[-1].pts == pytest.approx(RATE // 10, abs=1)  # on the wall clock
    assert reply.due == pytest.approx(now[0] + 0.02)
    rest = await silent_frames(reply, now, 2)
    assert all(f.samples.all() for f in rest)
    assert [f.pts - sent.pts for f in rest] == [FRAME_SAMPLES, 2 * FRAME_SAMPLES]
    reply.finish("resp_1")
    # After the reply, silence goes out every 20 ms again until it has lasted 500 ms.
    after = await silent_frames(reply, now, DTX_AFTER_FRAMES)
    assert [f.pts - rest[-1].pts for f in after] == [(i + 1) * FRAME_SAMPLES for i in range(DTX_AFTER_FRAMES)]
    assert reply.due == pytest.approx(now[0] + 0.4)


async def test_without_dtx_silence_goes_out_every_20_ms() -> None:
    now = [0.0]
    reply = ReplyTrack(clock=lambda: now[0], encode=raw, dtx=False)
    sent = await silent_frames(reply, now, 3 * DTX_AFTER_FRAMES)
    assert [f.pts for f in sent] == [i * FRAME_SAMPLES for i in range(3 * DTX_AFTER_FRAMES)]
    assert reply.due == pytest.approx(now[0] + 0.02)
