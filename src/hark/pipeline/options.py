"""How a reply is to be made: the session's settings, and one response's overrides of them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Literal

from hark.engines.base import ChatMessage, ToolCall, ToolChoice, ToolSpec
from hark.pipeline.items import Item

Output = Literal["audio", "text"]


@dataclass(frozen=True, slots=True)
class ResponseOptions:
    """Every field None means "as the session says" (for the session: hark's default)."""

    instructions: str | None = None
    tools: tuple[ToolSpec, ...] | None = None
    """Client-defined functions (hark's built-in tools are offered besides)."""
    tool_choice: ToolChoice | None = None
    output: Output | None = None
    max_output_tokens: int | Literal["inf"] | None = None
    metadata: Mapping[str, str] | None = None
    in_conversation: bool = True
    """False: out of band; what the response says is not added to the conversation."""
    input: tuple[Item | str, ...] | None = None
    """Out-of-band context instead of the conversation: new items, or ids of conversation items."""

    def merged(self, override: ResponseOptions) -> ResponseOptions:
        changes = {
            f.name: getattr(override, f.name)
            for f in fields(ResponseOptions)
            if f.name in ("instructions", "tools", "tool_choice", "output", "max_output_tokens")
            and getattr(override, f.name) is not None
        }
        return replace(self, **changes)


@dataclass(frozen=True, slots=True)
class ResolvedOptions:
    instructions: str | None
    tools: tuple[ToolSpec, ...]
    tool_choice: ToolChoice
    output: Output
    max_output_tokens: int | None
    metadata: Mapping[str, str] | None
    in_conversation: bool
    context: list[ChatMessage] | None
    """What the LLM is sent instead of the history (out-of-band ``input``); None: the history."""


def resolve(
    session: ResponseOptions,
    instructions: str | None,
    response: ResponseOptions | None,
    context: list[ChatMessage] | None = None,
) -> ResolvedOptions:
    merged = session.merged(response) if response is not None else session
    own = response.instructions if response is not None else None
    return ResolvedOptions(
        instructions=own if own is not None else instructions,
        tools=merged.tools or (),
        tool_choice=merged.tool_choice or "auto",
        output=merged.output or "audio",
        max_output_tokens=None if merged.max_output_tokens == "inf" else merged.max_output_tokens,
        metadata=response.metadata if response is not None else None,
        in_conversation=response.in_conversation if response is not None else True,
        context=context,
    )


def as_message(item: Item) -> ChatMessage | None:
    """The chat message an item is for the LLM (None: nothing to say yet)."""
    if item.type == "function_call":
        call = ToolCall(item.call_id or "", item.name or "", item.arguments or "")
        return ChatMessage("assistant", "", tool_calls=(call,))
    if item.type == "function_call_output":
        return ChatMessage("tool", item.output or "", tool_call_id=item.call_id)
    if item.text is None or item.role is None:
        return None
    return ChatMessage(item.role, item.text)
