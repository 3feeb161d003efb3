import asyncio

from hark.transports.outbox import Outbox


async def _first_written_after(put: str) -> list[str]:
    """Start a writer, queue a message and a task in the same moment; what happened first."""
    outbox = Outbox(event_ids=False)
    order: list[str] = []

    async def writer() -> None:
        message = await outbox.get()
        order.append("audio written" if isinstance(message, bytes) else "event written")

    async def work() -> None:
        order.append("work")

    writing = asyncio.create_task(writer())
    await asyncio.sleep(0)  # the writer waits for something to write
    if put == "event":
        outbox.put({"type": "input_audio_buffer.speech_stopped"})
    else:
        outbox.put_audio(b"\0\0" * 2400, audio_of="resp_1")
    working = asyncio.create_task(work())
    await asyncio.gather(writing, working)
    return order


async def test_events_are_written_after_the_work_started_in_the_same_moment() -> None:
    # At a turn's end: the transcript and the reply (the LLM's request) go before the events.
    assert await _first_written_after("event") == ["work", "event written"]


async def test_reply_audio_is_written_at_once() -> None:
    assert await _first_written_after("audio") == ["audio written", "work"]


async def test_events_and_audio_keep_their_order() -> None:
    outbox = Outbox(event_ids=False)
    outbox.put({"type": "a"})
    outbox.put_audio(b"\0\0", audio_of="resp_1")
    outbox.put({"type": "b"})
    assert [await outbox.get() for _ in range(3)] == ['{"type":"a"}', b"\0\0", '{"type":"b"}']
