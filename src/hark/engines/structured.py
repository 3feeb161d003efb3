"""Structured output: ask an LLM for JSON matching a Pydantic model; validate; repair or retry."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from hark.engines.base import LLM, ChatMessage, LLMOptions
from hark.errors import HarkError

log = logging.getLogger("hark.structured")

M = TypeVar("M", bound=BaseModel)


class StructuredOutputError(HarkError):
    """The LLM did not produce valid JSON for the model within the allowed attempts."""


def extract_json(text: str) -> str:
    """The JSON object in a reply, tolerating code fences and chatter around it."""
    start, end = text.find("{"), text.rfind("}")
    if start == -1 or end < start:
        raise ValueError("the reply holds no JSON object")
    return text[start : end + 1]


def _problems(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'object'}: {e['msg']}" for e in exc.errors()[:8]
        )
    return str(exc)


async def complete_json(
    llm: LLM, messages: Sequence[ChatMessage], model: type[M], *, attempts: int = 3, max_tokens: int = 1500
) -> M:
    """Ask for JSON matching ``model``. An invalid reply is shown back to the LLM with what was
    wrong and the schema, and it tries again; after ``attempts`` replies StructuredOutputError."""
    schema = model.model_json_schema()
    instruction = "Reply with only a JSON object that matches this JSON schema:\n" + json.dumps(schema)
    conversation = [*messages, ChatMessage("user", instruction)]
    options = LLMOptions(json_schema=schema, temperature=0.0, max_tokens=max_tokens)
    last_problem = ""
    for attempt in range(1, attempts + 1):
        text = "".join([chunk async for chunk in llm.stream(conversation, options) if isinstance(chunk, str)])
        try:
            return model.model_validate_json(extract_json(text))
        except (ValidationError, ValueError) as exc:
            last_problem = _problems(exc)
            log.warning("invalid structured output", extra={"attempt": attempt, "model": model.__name__})
            conversation += [
                ChatMessage("assistant", text),
                ChatMessage(
                    "user",
                    f"That reply was not valid ({last_problem}). Reply again with only the corrected "
                    "JSON object, nothing else.",
                ),
            ]
    raise StructuredOutputError(f"no valid {model.__name__} after {attempts} attempts: {last_problem}")
