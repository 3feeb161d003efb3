"""Building engines against a stand-in, for the contract tests' ``make`` fixtures."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, Protocol, TypeVar

from hark.config import ProviderConfig, Settings


class Closable(Protocol):
    async def aclose(self) -> None: ...


E = TypeVar("E", bound=Closable)


@asynccontextmanager
async def engine_factory(
    from_config: Callable[[ProviderConfig, Settings], E], kind: str, url: str, **defaults: Any
) -> AsyncIterator[Callable[..., E]]:
    """``make(base_url=None, **fields)``: an engine built from a ``kind`` provider config pointed at
    ``url`` (or ``base_url``), with ``fields`` over ``defaults``. Every engine made is closed after."""
    engines: list[E] = []

    def make(base_url: str | None = None, **fields: Any) -> E:
        provider = ProviderConfig(kind=kind, base_url=base_url or url, **{**defaults, **fields})
        engines.append(from_config(provider, Settings()))
        return engines[-1]

    try:
        yield make
    finally:
        for engine in engines:
            await engine.aclose()
