import asyncio

from hark.transports.outbox import LATER_LIMIT, Outbox


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


async def test_events_handed_over_unmade_are_made_after_the_work_started_in_the_same_moment() -> None:
    outbox = Outbox(event_ids=False)
    order: list[str] = []

    def make() -> None:
        order.append("made")
        outbox.put({"type": "input_audio_buffer.speech_stopped"})

    async def writer() -> None:
        await outbox.get()
        order.append("written")

    async def work() -> None:
        order.append("work")

    writing = asyncio.create_task(writer())
    await asyncio.sleep(0)
    outbox.put_later(make)
    assert outbox.pending == 1
    await asyncio.gather(writing, asyncio.create_task(work()))
    assert order == ["work", "made", "written"]


async def test_unmade_events_keep_their_place_before_what_is_queued_directly() -> None:
    outbox = Outbox()
    outbox.put_later(lambda: outbox.put({"type": "a"}))
    outbox.put({"type": "b"})
    outbox.put_later(lambda: outbox.put({"type": "c"}))
    outbox.put_audio(b"\0\0", audio_of="resp_1")
    outbox.put_later(lambda: outbox.put({"type": "d"}))
    written = [await outbox.get() for _ in range(5)]
    assert written == [
        '{"type":"a","event_id":"event_1"}',
        '{"type":"b","event_id":"event_2"}',
        '{"type":"c","event_id":"event_3"}',
        b"\0\0",
        '{"type":"d","event_id":"event_4"}',
    ]
    assert outbox.pending == 0


async def test_an_event_this_client_does_not_get_leaves_nothing_to_write() -> None:
    outbox = Outbox(event_ids=False)
    outbox.put_later(lambda: None)
    outbox.put_later(lambda: outbox.put({"type": "kept"}))
    assert await outbox.get() == '{"type":"kept"}'


def test_unmade_events_beyond_the_limit_are_made_and_counted_at_once() -> None:
    outbox = Outbox(limit_bytes=1000, event_ids=False)
    for _ in range(LATER_LIMIT + 1):
        outbox.put_later(lambda: outbox.put({"type": "x" * 40}))
    assert outbox.overflow.is_set()  # what is made counts against the budget as it is made
    assert outbox.pending < LATER_LIMIT
