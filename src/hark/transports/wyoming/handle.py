"""The handle program: a transcript in, hark's LLM answer out, with a history per Home
Assistant conversation (its ``conversation_id``, carried in the event's context).

The reply goes through the same LLM fallback chain and tools as every other path; with no LLM,
or none reachable before its first word, the answer is the labelled echo. Streaming form
(Wyoming's): ``handled-start``, a ``handled-chunk`` per piece of text as the LLM writes it, the
whole ``handled`` (for clients that do not stream), ``handled-stop``.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from hark.engines.base import LLM, ChatMessage
from hark.errors import EngineError
from hark.pipeline.history import History
from hark.pipeline.thinking import Thought, think
from hark.pipeline.tools import Toolbox
from hark.transports.wyoming.errors import WyomingError
from wyoming.event import Event
from wyoming.handle import Handled, HandledChunk, HandledStart, HandledStop

log = logging.getLogger("hark.wyoming.handle")

Send = Callable[[Event], Awaitable[None]]
MAX_CONVERSATIONS = 256
CONVERSATION_TTL_S = 300.0
"""Home Assistant starts a new conversation after 5 minutes without a turn; so does hark."""
MAX_ID_CHARS = 128


@dataclass(slots=True)
class _Kept:
    history: History
    used: float


class Conversations:
    """Histories by conversation id: at most ``MAX_CONVERSATIONS``, each dropped after
    ``CONVERSATION_TTL_S`` unused (the least recently used first when full)."""

    def __init__(
        self, system_prompt: str, history_turns: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._prompt = system_prompt
        self._turns = history_turns
        self._clock = clock
        self._kept: OrderedDict[str, _Kept] = OrderedDict()

    def __len__(self) -> int:
        return len(self._kept)

    def get(self, conversation_id: str) -> History:
        now = self._clock()
        # The dict is in order of last use: the expired are at its front.
        while self._kept and now - next(iter(self._kept.values())).used >= CONVERSATION_TTL_S:
            self._kept.popitem(last=False)
        kept = self._kept.pop(conversation_id, None)
        if kept is None:
            if len(self._kept) >= MAX_CONVERSATIONS:
                self._kept.popitem(last=False)
            kept = _Kept(History(self._prompt, self._turns), now)
        kept.used = now
        self._kept[conversation_id] = kept
        return kept.history


def conversation_id(context: Any) -> str:
    """The client's conversation id when it gave a usable one, else a new one."""
    value = context.get("conversation_id") if isinstance(context, dict) else None
    if isinstance(value, str) and 0 < len(value) <= MAX_ID_CHARS:
        return value
    return f"hark-{uuid.uuid4().hex[:16]}"


async def reply_text(
    llm: LLM | None, tools: Toolbox | None, messages: list[ChatMessage]
) -> AsyncIterator[str]:
    """The LLM's reply, running the tools it asks for: the voice conversation's own rules
    (labelled echo without an LLM or before its first word; never replayed after it)."""
    user_text = messages[-1].content if messages else None
    async for piece in think(llm, tools, Thought(messages), user_text=user_text, on_unavailable=_unused):
        yield piece


def _unused(_message: str) -> None:
    """Wyoming has no side channel for the LLM's state: the echo reply itself says it."""


async def handle(
    conversations: Conversations,
    llm: LLM | None,
    tools: Toolbox | None,
    text: str,
    context: Any,
    send: Send,
) -> None:
    """Answer one transcript, streamed; the exchange joins the conversation's history."""
    conv_id = conversation_id(context)
    reply_context = {"conversation_id": conv_id}
    history = conversations.get(conv_id)
    messages = history.messages(pending_user=text)
    started = time.perf_counter()
    first: float | None = None
    pieces: list[str] = []
    await send(HandledStart(context=reply_context).event())
    try:
        async for piece in reply_text(llm, tools, messages):
            if not piece:
                continue
            if first is None:
                first = time.perf_counter() - started
            pieces.append(piece)
            await send(HandledChunk(piece).event())
    except EngineError as exc:
        raise WyomingError("llm_unavailable", f"the language model failed part-way: {exc}") from exc
    answer = "".join(pieces).strip()
    item = uuid.uuid4().hex
    history.add("u" + item, "user", text)
    history.add("a" + item, "assistant", answer)
    await send(Handled(text=answer, context=reply_context).event())
    await send(HandledStop().event())
    log.info(
        "handled",
        extra={
            "first_text_s": None if first is None else round(first, 3),
            "seconds": round(time.perf_counter() - started, 3),
            "mode": "llm" if llm is not None else "echo",
        },
    )
