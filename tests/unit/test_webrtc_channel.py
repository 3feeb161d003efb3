"""The data channel dressed as a WebSocket: a close the session asks for says why first, and
hangs up even when that is cut short."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("aiortc")

from hark.transports.webrtc.channel import DISCONNECT, ChannelSocket


async def test_close_says_why_then_hangs_up() -> None:
    ended: list[str] = []
    said: list[tuple[int, str]] = []
    socket = ChannelSocket(ended.append)

    async def closing(code: int, reason: str) -> None:
        said.append((code, reason))

    socket.on_closing = closing
    await socket.close(1001, "server is restarting; reconnect")
    assert said == [(1001, "server is restarting; reconnect")]
    assert ended == ["server is restarting; reconnect"]
    assert await socket.receive() == DISCONNECT
    await socket.close(1000, "again")  # already closed: nothing more is said
    assert said == [(1001, "server is restarting; reconnect")] and len(ended) == 1


async def test_a_close_cut_short_still_hangs_up() -> None:
    ended: list[str] = []
    socket = ChannelSocket(ended.append)

    async def stuck(code: int, reason: str) -> None:
        await asyncio.Event().wait()

    socket.on_closing = stuck
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await socket.close(1000, "idle timeout")
    assert ended == ["idle timeout"] and socket.closed.is_set()


async def test_failing_last_words_do_not_stop_the_hang_up() -> None:
    ended: list[str] = []
    socket = ChannelSocket(ended.append)

    async def broken(code: int, reason: str) -> None:
        raise RuntimeError("the channel is gone")

    socket.on_closing = broken
    await socket.close(1008, "client too slow")
    assert ended == ["client too slow"]
