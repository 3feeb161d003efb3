"""The response slot: at most one response in progress per conversation."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from hark.pipeline.errors import InvalidValue, UnknownItem
from hark.pipeline.playback import Segment, heard_text
from hark.pipeline.responder import Responder, TextReply

RECENT_REPLIES = 8
"""Assistant items a client may still truncate (it plays them a little behind)."""
ENDING_WAIT_S = 1.0
"""The longest a new reply waits for the cancelled one before it to end. It ends within a few
loop passes (its engines stop at their next await); the bound only keeps a stuck one from
holding up the conversation."""

Output = Responder | TextReply


@dataclass(frozen=True, slots=True)
class Finished:
    """A finished reply as ``conversation.item.truncate`` needs it: its words by audio position
    and how far its audio went. Kept instead of the reply itself, whose TTS stream, buffers and
    callbacks (a few hundred objects) the garbage collector would otherwise walk again at every
    full collection for the next eight turns of every session."""

    peak_ms: float
    segments: tuple[Segment, ...] = ()
    text: str | None = None
    """A written reply: all of it counts as heard."""

    @classmethod
    def of(cls, output: Output) -> Finished:
        if isinstance(output, TextReply):
            return cls(output.clock.peak_ms, text=output.full_text())
        return cls(output.clock.peak_ms, tuple(output.segments))

    def heard(self, played_ms: float) -> str:
        return self.text if self.text is not None else heard_text(self.segments, played_ms)


class ResponseSlot:
    """The response task in progress, why it was cancelled (its response.done reads the reason),
    the reply being said now, and the last few replies for ``conversation.item.truncate``."""

    def __init__(self) -> None:
        self.task: asyncio.Task[None] | None = None
        self.current: tuple[str, str, Output] | None = None
        """(response id, item id, output) of the reply that has been opened and not yet finished."""
        self._reasons: dict[asyncio.Task[None], str] = {}
        self._recent: dict[str, Output | Finished] = {}
        self._ending: asyncio.Task[None] | None = None
        """The last reply cancelled, until it has ended (its response.done sent, its words kept)."""

    @property
    def busy(self) -> bool:
        return self.task is not None and not self.task.done()

    def cancel(self, reason: str) -> None:
        """Cancel the response in progress (if any) and free the slot."""
        for task in [t for t in self._reasons if t.done()]:
            del self._reasons[task]  # cancelled before it ever ran
        if self.task is not None and not self.task.done():
            self._reasons[self.task] = reason
            self.task.cancel()
            self._ending = self.task
        self.task = None

    @property
    def ending(self) -> bool:
        """A cancelled reply has not ended yet: its response.done, and what was heard of it in
        the history, are still to come."""
        return self._ending is not None and not self._ending.done()

    async def ended(self) -> None:
        """Wait for the cancelled reply to end (at most ``ENDING_WAIT_S``), so that the next
        reply opens after its response.done and reads a history with its heard words in it."""
        task = self._ending
        if task is not None and not task.done():
            await asyncio.wait((task,), timeout=ENDING_WAIT_S)
        if task is self._ending:
            self._ending = None

    def reason(self, task: asyncio.Task[None] | None) -> str:
        """Why ``task`` was cancelled (a new turn, unless the client cancelled it)."""
        return self._reasons.pop(task, "turn_detected") if task is not None else "turn_detected"

    def opened(self, response_id: str, item_id: str, output: Output) -> None:
        self.current = (response_id, item_id, output)
        self._recent[item_id] = output
        while len(self._recent) > RECENT_REPLIES:
            self._recent.pop(next(iter(self._recent)))

    def heard(self, item_id: str, audio_end_ms: int) -> str:
        """The words of a recent reply heard in its first ``audio_end_ms``. Raises UnknownItem,
        or InvalidValue when more was played than was sent."""
        output = self._recent.get(item_id)
        if output is None:
            raise UnknownItem(f"no assistant audio item {item_id[:64]!r}")
        peak_ms = output.peak_ms if isinstance(output, Finished) else output.clock.peak_ms
        if audio_end_ms > peak_ms + 1:
            raise InvalidValue(
                f"audio_end_ms {audio_end_ms} is beyond the item's {int(peak_ms)} ms",
                param="audio_end_ms",
            )
        return output.heard(float(audio_end_ms))

    def finished(self, item_id: str) -> None:
        """The reply of ``item_id`` has ended: keep only what truncating it needs."""
        output = self._recent.get(item_id)
        if output is not None and not isinstance(output, Finished):
            self._recent[item_id] = Finished.of(output)

    def forget(self, item_id: str) -> None:
        self._recent.pop(item_id, None)
