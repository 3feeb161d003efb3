"""What the provider engines share, written once.

- Configuration: a provider's API key (its own source, or the kind's default environment
  variable), an LLM's model, and the optional SDK an engine needs.
- Errors: one rule for which HTTP statuses are worth retrying, the ``EngineError`` a status
  becomes, and the usual mapping of an SDK's transport failures.
- Streaming: the two deadlines of an attempt (first byte, whole attempt) and PCM16 sample framing.
- Chat turns: the mapping helpers the non-OpenAI LLM APIs (Anthropic, Gemini) have in common.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from hark.errors import ConfigError, EngineError, EngineUnavailable, MissingDependency, parse_retry_after

if TYPE_CHECKING:
    from hark.config import ProviderConfig, Settings
    from hark.engines.base import ChatMessage

T = TypeVar("T")
Part = TypeVar("Part")

# --- Configuration -------------------------------------------------------------------------------


def require_sdk(error: ImportError | None, package: str, install: str) -> None:
    """Raise MissingDependency (with the install command) when an optional SDK failed to import."""
    if error is not None:
        raise MissingDependency(package, install) from error


def llm_model(provider: ProviderConfig, settings: Settings, example: str) -> str:
    """The model an LLM provider asks for; a ConfigError when it is still the generic "default"."""
    model = provider.model or settings.llm.model
    if model == "default":
        raise ConfigError(f"llm provider {provider.label}: set model, e.g. {example}")
    return model


def api_key(provider: ProviderConfig, default_env: str | None) -> tuple[str | None, str | None]:
    """The provider's API key (None when there is none) and the environment variable to name for it.

    The config's own source wins (``api_key_env``, then ``api_key_file``, then ``api_key``, as in
    ``ProviderConfig.secret``); ``default_env`` is read only when the config names none of them."""
    unset = provider.api_key_env is None and provider.api_key is None and provider.api_key_file is None
    if default_env is not None and unset:
        provider = provider.model_copy(update={"api_key_env": default_env})
    return provider.secret(), provider.api_key_env or default_env


def require_api_key(provider: ProviderConfig, default_env: str, stage: Literal["llm", "tts"]) -> str:
    """As ``api_key``, but a missing (or empty) key is a ConfigError naming the variable to set."""
    key, env = api_key(provider, default_env)
    if key:
        return key
    if stage == "tts":
        raise ConfigError(
            f"tts provider {provider.label}: no API key; set the environment variable {env} "
            "(or api_key_env, api_key_file or api_key in the provider's config)"
        )
    raise ConfigError(
        f"llm provider {provider.label}: no API key; set {env} (or api_key_env, api_key_file or api_key)"
    )


# --- Errors --------------------------------------------------------------------------------------

RETRYABLE_STATUS = frozenset({408, 409, 429})
"""Client errors worth retrying (request timeout, conflict, rate limit); every 5xx is too."""
TOO_EARLY = frozenset({425})
"""425 Too Early, which the ElevenLabs and Cartesia engines retry as well (``also_retryable``)."""


def retryable_status(status: int, also: Collection[int] = ()) -> bool:
    """Whether trying again (here or elsewhere) may help: ``RETRYABLE_STATUS``, ``also`` and 5xx."""
    return status >= 500 or status in RETRYABLE_STATUS or status in also


def status_error(
    status: int,
    retry_after: str | None,
    where: str,
    engine: str,
    detail: str | None = None,
    *,
    also_retryable: Collection[int] = (),
) -> EngineError:
    """An HTTP error status as ``<where> answered HTTP <status>[: <detail>]``, retryable by
    ``retryable_status``, carrying the wait a Retry-After header asked for."""
    return EngineError(
        f"{where} answered HTTP {status}" + (f": {detail}" if detail else ""),
        retryable=retryable_status(status, also_retryable),
        engine=engine,
        retry_after=parse_retry_after(retry_after),
    )


ErrorTypes = type[BaseException] | tuple[type[BaseException], ...]


def sdk_error(
    exc: Exception,
    where: str,
    engine: str,
    *,
    timeout: ErrorTypes,
    unreachable: ErrorTypes,
    broken: ErrorTypes,
) -> EngineError:
    """An SDK or transport failure other than an HTTP status: ``timeout`` and ``broken`` (a stream
    cut off) are worth retrying, ``unreachable`` makes the engine unavailable, a ValueError is a
    malformed stream (undecodable JSON), and anything else a retryable failure."""
    if isinstance(exc, timeout):
        return EngineError(f"{where} timed out", retryable=True, engine=engine)
    if isinstance(exc, unreachable):
        return EngineUnavailable(f"cannot connect to {where}", engine=engine)
    if isinstance(exc, broken):
        return EngineError(f"the stream from {where} broke off", retryable=True, engine=engine)
    if isinstance(exc, ValueError):
        return EngineError(f"{where} sent a malformed stream", retryable=True, engine=engine)
    return EngineError(f"{where} failed: {type(exc).__name__}", retryable=True, engine=engine)


# --- Streaming -----------------------------------------------------------------------------------


class Deadlines:
    """The two budgets of one streamed attempt on the running loop's clock: ``timeout`` until the
    first data, ``total_timeout`` for the whole attempt (which caps the first one too)."""

    def __init__(self, timeout: float, total_timeout: float) -> None:
        now = asyncio.get_running_loop().time()
        self.end = now + total_timeout
        self.first = min(self.end, now + timeout)
        self.started = False
        """Whether data has come; from then on only ``end`` applies."""

    @classmethod
    def total(cls, total_timeout: float) -> Deadlines:
        """One deadline for the whole attempt, the wait for the first data included."""
        return cls(total_timeout, total_timeout)

    def wait(self) -> asyncio.Timeout:
        """Bounds one wait. Wrap only the wait, never a yield, so the consumer's time is its own."""
        return asyncio.timeout_at(self.end if self.started else self.first)

    async def each(self, items: AsyncIterator[T]) -> AsyncIterator[T]:
        """``items`` until they end (or yield None), each wait bounded; the first one starts the stream."""
        while True:
            async with self.wait():
                item = await anext(items, None)
            if item is None:
                return
            self.started = True
            yield item

    def timed_out(self, where: str, engine: str) -> EngineError:
        stage = "mid-stream" if self.started else "before the first byte"
        return EngineError(f"{where} timed out {stage}", retryable=True, engine=engine)


def whole_samples(data: bytes) -> tuple[bytes, bytes]:
    """Split off an odd trailing byte: network chunks need not end on a sample boundary."""
    cut = len(data) - len(data) % 2
    return data[:cut], data[cut:]


async def pcm16_stream(
    chunks: AsyncIterator[bytes], deadlines: Deadlines, where: str, engine: str, what: str = "a stream"
) -> AsyncIterator[bytes]:
    """``chunks`` cut on PCM16 sample boundaries, each wait bounded by ``deadlines``. A stream that
    ends mid-sample raises a retryable ``<where> sent <what> that is not whole PCM16 samples``."""
    carry = b""
    async for chunk in deadlines.each(chunks):
        pcm, carry = whole_samples(carry + chunk)
        if pcm:
            yield pcm
    if carry:
        message = f"{where} sent {what} that is not whole PCM16 samples"
        raise EngineError(message, retryable=True, engine=engine)


def unfinished(where: str, total_timeout: float, engine: str) -> EngineError:
    """A reply that ran past its whole-attempt budget (a stream that trickles cannot run on forever)."""
    return EngineError(
        f"{where} did not finish within {total_timeout:g}s (total_timeout)", retryable=True, engine=engine
    )


# --- Chat turns (Anthropic, Gemini) ----------------------------------------------------------------


def system_prompt(messages: Sequence[ChatMessage]) -> str:
    """Every non-empty system message, in order, as one text."""
    return "\n\n".join(m.content for m in messages if m.role == "system" and m.content)


def merged_turns(
    messages: Sequence[ChatMessage], parts: Callable[[ChatMessage], list[Part]], assistant: str
) -> list[tuple[str, list[Part]]]:
    """The non-system turns as (role, parts): the assistant's role spelled ``assistant``, tool
    results in user turns. Turns without parts are dropped and consecutive turns of one role are
    merged, because every result of one assistant turn's tool calls belongs in the single user turn
    that follows it."""
    out: list[tuple[str, list[Part]]] = []
    for m in messages:
        if m.role == "system":
            continue
        role = assistant if m.role == "assistant" else "user"
        if not (converted := parts(m)):
            continue
        if out and out[-1][0] == role:
            out[-1][1].extend(converted)
        else:
            out.append((role, converted))
    return out


def tool_arguments(arguments: str) -> dict[str, Any]:
    """A tool call's JSON arguments as an object: ``{}`` when empty, not JSON, or not an object."""
    try:
        value = json.loads(arguments or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
