"""Tools the LLM may call during a turn, OpenAI-style. Each is a small async function that
takes the parsed arguments and returns text for the LLM."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import zoneinfo
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from hark.engines.base import ToolCall, ToolSpec

TOOL_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class Tool:
    spec: ToolSpec
    run: Callable[[dict[str, Any]], Awaitable[str]]


async def _current_time(args: dict[str, Any]) -> str:
    name = args.get("timezone") or "UTC"
    try:
        zone: dt.tzinfo = zoneinfo.ZoneInfo(str(name))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return f"Unknown time zone {str(name)[:64]!r}; use an IANA name such as Europe/Paris."
    now = dt.datetime.now(zone)
    return f"{now:%A %d %B %Y, %H:%M} ({name})"


CURRENT_TIME = Tool(
    ToolSpec(
        name="current_time",
        description="The current date and time, optionally in an IANA time zone such as Europe/Paris.",
        parameters={
            "type": "object",
            "properties": {"timezone": {"type": "string", "description": "IANA time zone name"}},
            "required": [],
        },
    ),
    _current_time,
)

BUILTIN: dict[str, Tool] = {CURRENT_TIME.spec.name: CURRENT_TIME}


class Toolbox:
    def __init__(self, tools: Sequence[Tool]) -> None:
        self._tools = {tool.spec.name: tool for tool in tools}

    @classmethod
    def from_names(cls, names: Sequence[str]) -> Toolbox:
        unknown = [n for n in names if n not in BUILTIN]
        if unknown:
            raise ValueError(f"unknown tools {unknown}; available: {sorted(BUILTIN)}")
        return cls([BUILTIN[n] for n in names])

    @property
    def specs(self) -> tuple[ToolSpec, ...]:
        return tuple(tool.spec for tool in self._tools.values())

    async def run(self, call: ToolCall) -> str:
        """The tool's answer, or a short error the LLM can read; never raises."""
        tool = self._tools.get(call.name)
        if tool is None:
            return f"Error: there is no tool named {call.name[:64]!r}."
        try:
            args = json.loads(call.arguments or "{}")
        except ValueError:
            return "Error: the arguments were not valid JSON."
        if not isinstance(args, dict):
            return "Error: the arguments must be a JSON object."
        try:
            async with asyncio.timeout(TOOL_TIMEOUT_S):
                return await tool.run(args)
        except TimeoutError:
            return f"Error: {call.name} took longer than {TOOL_TIMEOUT_S:g} s."
        except Exception as exc:  # a tool's own bug must not end the turn
            return f"Error: {call.name} failed ({type(exc).__name__})."
