"""A reply's words from the LLM, tool rounds included.

Built-in tools (``Toolbox``) are run here, by hark, and the LLM goes on with their results.
Calls of client-defined functions are not run: they are collected in ``Thought.client_calls``
and end the reply, for the client to run and answer. Each call is run at most once: a call is
acted on only after the LLM's stream for it has ended, and a stream that fails is never replayed
elsewhere once it delivered anything (``FallbackLLM``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from hark.engines.base import LLM, ChatMessage, LLMOptions, ToolCall, ToolChoice, ToolSpec
from hark.errors import EngineError, EngineUnavailable
from hark.pipeline.tools import Toolbox

log = logging.getLogger("hark.conversation")

MAX_TOOL_ROUNDS = 3


@dataclass(slots=True)
class Thought:
    """What one reply asks the LLM, and what came back besides words."""

    messages: list[ChatMessage]
    client_tools: tuple[ToolSpec, ...] = ()
    tool_choice: ToolChoice = "auto"
    max_tokens: int | None = None
    client_calls: list[ToolCall] = field(default_factory=list)


def offered_tools(builtin: Toolbox | None, client: tuple[ToolSpec, ...]) -> tuple[ToolSpec, ...]:
    """Every tool the LLM may call; a client function shadows a built-in of the same name."""
    names = {t.name for t in client}
    own = tuple(t for t in builtin.specs if t.name not in names) if builtin is not None else ()
    return own + client


async def think(
    llm: LLM | None,
    toolbox: Toolbox | None,
    thought: Thought,
    *,
    user_text: str | None,
    on_unavailable: Callable[[str], None],
    confirmed: asyncio.Event | None = None,
) -> AsyncIterator[str]:
    """The reply's text; the labelled echo when no LLM is configured or it cannot be reached
    before its first word. A failure after the first word ends the turn (never replayed).

    ``confirmed``: set once a held reply may act; until then it runs no tools (they may have
    effects) and reports nothing."""
    if llm is None:
        yield echo_reply(user_text, None)
        return
    messages = thought.messages
    client_names = {t.name for t in thought.client_tools}
    tools = offered_tools(toolbox, thought.client_tools)
    started = False
    try:
        for round_ in range(MAX_TOOL_ROUNDS + 1):
            # The last round offers no tools, so the LLM has to answer in words.
            last = round_ == MAX_TOOL_ROUNDS
            options = LLMOptions(
                tools=() if last else tools,
                tool_choice=thought.tool_choice if round_ == 0 else "auto",
                max_tokens=thought.max_tokens,
            )
            text: list[str] = []
            calls: list[ToolCall] = []
            async for chunk in llm.stream(messages, options):
                if isinstance(chunk, ToolCall):
                    calls.append(chunk)
                    continue
                started = True
                text.append(chunk)
                yield chunk
            if not calls:
                return
            if confirmed is not None:
                await confirmed.wait()
            client = [c for c in calls if c.name in client_names]
            if client:
                # The client runs these; the reply ends here and the client's outputs continue it
                # (built-in calls asked for beside them are dropped, not run).
                thought.client_calls.extend(client)
                return
            if toolbox is None:
                return
            # Words already spoken stay said; each call runs once and the LLM goes on from there.
            messages = [*messages, ChatMessage("assistant", "".join(text), tool_calls=tuple(calls))]
            for call in calls:
                log.info("tool call", extra={"tool": call.name})
                result = await toolbox.run(call)
                messages.append(ChatMessage("tool", result, tool_call_id=call.id))
    except EngineError as exc:
        if started:
            raise
        if confirmed is not None:
            await confirmed.wait()
        log.warning("LLM unavailable, answering in echo mode", extra={"engine": exc.engine})
        on_unavailable(f"no language model answered: {exc}")
        reason = "unreachable" if isinstance(exc, EngineUnavailable) else "failed"
        yield echo_reply(user_text, reason)


def echo_reply(user_text: str | None, reason: str | None) -> str:
    heard = (user_text or "").strip()
    if reason == "unreachable":
        lead = "Echo mode: I cannot reach the language model right now."
    elif reason == "failed":
        lead = "Echo mode: the language model failed to answer."
    else:
        lead = "Echo mode."
    return f"{lead} You said: {heard}" if heard else f"{lead} I did not catch any words."
