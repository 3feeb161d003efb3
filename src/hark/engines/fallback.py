"""Fallback chains: a composite per stage that *is* an STT, LLM or TTS.

Callers cannot tell one provider from a chain. For each request the chain tries its providers
in order, skipping those whose circuit is open (all of them, if every circuit is open, rather
than fail without trying):

- Each attempt has a budget to its first token / byte / result (``ProviderConfig.timeout``); a
  provider that misses it is abandoned at once and its circuit opens, so the next request skips
  it until a background probe (``check()``) finds it healthy again. Time spent waiting in a
  local engine's line does not count (``hark.priority.Budget``): that is load, not a stall.
- Retryable failures (5xx, 429, timeouts, malformed starts) are retried on the same provider
  with exponential backoff and full jitter, honouring Retry-After; other failures move on at once.
- Once a provider has delivered anything, the chain never starts over elsewhere: the user would
  hear words twice. A failure then ends the request with an error.
- Saturation is not failure: a provider that answers :class:`~hark.errors.EngineSaturated` (a
  full local worker queue, shed low-priority work) keeps its circuit closed and is not retried.
  With ``spill_over`` the request moves on to the next provider (never for sheddable work:
  partials and speculation are dropped, not sent to a paid provider); without it the
  saturation error goes to the caller, which knows it is load, not a fault.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

from hark.config import FallbackSettings, ProviderConfig
from hark.engines.base import (
    LLM,
    STT,
    TTS,
    ChatMessage,
    Float32Array,
    LLMChunk,
    LLMOptions,
    STTCapabilities,
    Transcript,
    TTSCapabilities,
)
from hark.engines.provider_health import CircuitBreaker, Provider, Tally, failure_reason
from hark.errors import EngineError, EngineSaturated, EngineUnavailable
from hark.priority import budget, current_work, refusable

log = logging.getLogger("hark.fallback")

E = TypeVar("E", LLM, STT, TTS)
T = TypeVar("T")


class Chain(Generic[E]):
    def __init__(
        self,
        providers: Sequence[tuple[ProviderConfig, E]],
        settings: FallbackSettings,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        if not providers:
            raise ValueError("a fallback chain needs at least one provider")
        self.settings = settings
        self.providers: list[Provider[E]] = []
        seen: Counter[str] = Counter()
        for config, engine in providers:
            seen[config.label] += 1
            label = config.label if seen[config.label] == 1 else f"{config.label}-{seen[config.label]}"
            self.providers.append(Provider(label, engine, config, CircuitBreaker(settings.breaker_failures)))
        self._sleep = sleep
        self._jitter = jitter
        self._probe_task: asyncio.Task[None] | None = None

    # -- ordering and health -------------------------------------------------------------

    def candidates(self) -> list[Provider[E]]:
        healthy = [p for p in self.providers if not p.breaker.is_open]
        return healthy or list(self.providers)

    def reorder(self, labels: Sequence[str]) -> None:
        """Put the providers in this order (every label exactly once)."""
        by_label = {p.label: p for p in self.providers}
        if sorted(labels) != sorted(by_label):
            raise ValueError(f"order must name each provider once: {sorted(by_label)}")
        self.providers = [by_label[label] for label in labels]

    def status(self) -> list[dict[str, Any]]:
        return [p.status() for p in self.providers]

    def _ensure_probe(self) -> None:
        if self._probe_task is None or self._probe_task.done():
            self._probe_task = asyncio.get_running_loop().create_task(self._probe_forever())

    async def _probe_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.probe_interval_s)
            await self.probe_open()

    async def probe_open(self) -> None:
        """Check every open provider once; a healthy one is used again."""
        for provider in [p for p in self.providers if p.breaker.is_open]:
            try:
                async with asyncio.timeout(provider.config.timeout):
                    await provider.engine.check()
            except (EngineError, TimeoutError, OSError):
                continue
            provider.breaker.success()
            log.info("provider recovered", extra={"provider": provider.label})

    def _failed(self, provider: Provider[E], exc: BaseException) -> None:
        reason = failure_reason(exc)
        provider.stats.failures[reason] += 1
        if provider.breaker.failure(stalled=reason == "timeout"):
            log.warning("provider circuit opened", extra={"provider": provider.label, "reason": reason})
            self._ensure_probe()

    def _may_spill(self, index: int, candidates: Sequence[Provider[E]]) -> bool:
        """Whether saturation at ``candidates[index]`` sends the request on: spill-over is on,
        a provider follows, and the work is owed to someone (not a partial or a speculation)."""
        return (
            self.settings.spill_over and index + 1 < len(candidates) and not current_work().priority.sheddable
        )

    def _saturated(self, tally: Tally, provider: Provider[E], exc: EngineSaturated, spill: bool) -> bool:
        """Note a provider at capacity; True when the request moves on to the next one."""
        provider.stats.saturated += 1
        tally.add(provider.label, exc)
        if spill:
            provider.stats.spilled += 1
            log.info("provider saturated; spilling over to the next", extra={"provider": provider.label})
        return spill

    def _succeeded(self, provider: Provider[E], started: float) -> None:
        provider.stats.successes += 1
        provider.stats.latencies.append(time.monotonic() - started)
        provider.breaker.success()

    def _retry_delay(self, attempt: int, exc: BaseException) -> float | None:
        """Seconds to wait before retrying the same provider; None to move on."""
        if attempt + 1 >= self.settings.attempts or isinstance(exc, TimeoutError | EngineUnavailable):
            return None
        if not isinstance(exc, EngineError) or not exc.retryable:
            return None
        if exc.retry_after is not None:
            # Waiting longer than the backoff cap would stall the conversation: move on instead.
            return exc.retry_after if exc.retry_after <= self.settings.backoff_max_s else None
        ceiling = min(self.settings.backoff_max_s, self.settings.backoff_s * 2.0**attempt)
        return float(ceiling * self._jitter())

    async def _retry(self, tally: Tally, provider: Provider[E], attempt: int, exc: BaseException) -> bool:
        """Note a failed attempt; wait and return True when the same provider should try again."""
        tally.add(provider.label, exc)
        delay = self._retry_delay(attempt, exc)
        if delay is None:
            return False
        await self._sleep(delay)
        return True

    def _exhausted(self, tally: Tally, what: str) -> EngineError:
        """The error when every provider failed; it carries the longest Retry-After any gave
        (a busy worker pool gives one), so HTTP callers can answer 503 with it."""
        detail = "; ".join(f"{label} ({reason}: {message})" for label, reason, message in tally.errors)
        message = f"every {what} provider failed: {detail or 'no provider'}"
        if tally.errors and all(reason == "saturated" for _, reason, _ in tally.errors):
            return EngineSaturated(message, engine="fallback", retry_after=tally.wait_hint)
        if all(reason in ("unavailable", "timeout") for _, reason, _ in tally.errors):
            return EngineUnavailable(message, engine="fallback")
        return EngineError(message, retryable=True, engine="fallback", retry_after=tally.wait_hint)

    async def aclose(self) -> None:
        if self._probe_task is not None:
            self._probe_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe_task
        for provider in self.providers:
            await provider.engine.aclose()

    async def check(self) -> None:
        errors: list[str] = []
        for provider in self.providers:
            try:
                async with asyncio.timeout(provider.config.timeout):
                    await provider.engine.check()
                return
            except (EngineError, TimeoutError, OSError) as exc:
                errors.append(f"{provider.label} ({failure_reason(exc)})")
        raise EngineUnavailable("no provider is reachable: " + "; ".join(errors), engine="fallback")


async def _next_within(iterator: AsyncIterator[T], seconds: float) -> T:
    """The next item, or TimeoutError after ``seconds`` (counted from when the work left a local
    engine's line, if it waited in one); StopAsyncIteration at the end. Awaited in the caller's
    task (no wait_for task), so the engine's stream stays in one task."""
    async with asyncio.timeout(seconds) as deadline:
        with budget(deadline, seconds):
            return await anext(iterator)


class _Streaming(Chain[E]):
    """Shared by LLM and TTS: streams whose first item has a budget and must never be replayed."""

    async def _stream(self, open_stream: Callable[[E], AsyncIterator[T]], what: str) -> AsyncIterator[T]:
        tally = Tally()
        candidates = self.candidates()
        for index, provider in enumerate(candidates):
            attempt = 0
            spill = self._may_spill(index, candidates)
            while True:
                provider.stats.attempts += 1
                started = time.monotonic()
                deadline = started + provider.config.total_timeout
                stream = open_stream(provider.engine)
                delivered = False
                try:
                    async with contextlib.aclosing(stream):  # type: ignore[type-var]
                        try:
                            with refusable(spill):
                                first = await _next_within(stream, provider.config.timeout)
                        except StopAsyncIteration:
                            self._succeeded(provider, started)
                            return
                        self._succeeded(provider, started)
                        delivered = True
                        yield first
                        while True:
                            try:
                                item = await _next_within(stream, max(0.001, deadline - time.monotonic()))
                            except StopAsyncIteration:
                                return
                            yield item
                except (EngineError, TimeoutError, OSError) as exc:
                    if isinstance(exc, EngineSaturated) and not delivered:
                        if self._saturated(tally, provider, exc, spill):
                            break
                        raise self._exhausted(tally, what) from exc
                    self._failed(provider, exc)
                    if delivered:
                        # What was delivered may already be heard: never start it again elsewhere.
                        raise EngineError(
                            f"{what} provider {provider.label} failed mid-stream ({failure_reason(exc)})",
                            retryable=False,
                            engine=provider.label,
                        ) from exc
                    if not await self._retry(tally, provider, attempt, exc):
                        break
                    attempt += 1
        raise self._exhausted(tally, what)


class FallbackLLM(_Streaming[LLM]):
    name = "fallback"

    def stream(
        self, messages: Sequence[ChatMessage], options: LLMOptions | None = None
    ) -> AsyncIterator[LLMChunk]:
        return self._stream(lambda engine: engine.stream(messages, options), "llm")


class FallbackTTS(_Streaming[TTS]):
    name = "fallback"
    capabilities = TTSCapabilities(streaming=True)

    def __init__(
        self, providers: Sequence[tuple[ProviderConfig, TTS]], settings: FallbackSettings, **kw: Any
    ):
        super().__init__(providers, settings, **kw)
        rates = {engine.sample_rate for _, engine in providers}
        # Output is resampled per provider so callers see one rate: the first provider's.
        self.sample_rate = providers[0][1].sample_rate
        self._mixed_rates = len(rates) > 1

    def synthesize(self, text: str) -> AsyncIterator[bytes]:
        return self._stream(lambda engine: self._at_rate(engine, text), "tts")

    async def _at_rate(self, engine: TTS, text: str) -> AsyncIterator[bytes]:
        if not self._mixed_rates or engine.sample_rate == self.sample_rate:
            async for pcm in engine.synthesize(text):
                yield pcm
            return
        from hark.audio import PCM16Resampler

        resampler = PCM16Resampler(engine.sample_rate, self.sample_rate)
        async for pcm in engine.synthesize(text):
            if out := resampler.process(pcm):
                yield out
        if tail := resampler.process(b"", last=True):
            yield tail


class FallbackSTT(Chain[STT]):
    name = "fallback"

    def __init__(
        self, providers: Sequence[tuple[ProviderConfig, STT]], settings: FallbackSettings, **kw: Any
    ):
        super().__init__(providers, settings, **kw)
        self.sample_rate = 16_000
        self.capabilities = STTCapabilities(
            streaming=all(e.capabilities.streaming for _, e in providers),
            interim_results=all(e.capabilities.interim_results for _, e in providers),
        )

    async def transcribe(
        self, audio: Float32Array, *, language: str | None = None, deterministic: bool = False
    ) -> Transcript:
        tally = Tally()
        candidates = self.candidates()
        for index, provider in enumerate(candidates):
            attempt = 0
            spill = self._may_spill(index, candidates)
            while True:
                provider.stats.attempts += 1
                started = time.monotonic()
                try:
                    with refusable(spill):
                        async with asyncio.timeout(provider.config.timeout) as deadline:
                            with budget(deadline, provider.config.timeout):
                                transcript = await provider.engine.transcribe(
                                    audio, language=language, deterministic=deterministic
                                )
                except (EngineError, TimeoutError, OSError) as exc:
                    if isinstance(exc, EngineSaturated):
                        if self._saturated(tally, provider, exc, spill):
                            break
                        raise self._exhausted(tally, "stt") from exc
                    self._failed(provider, exc)
                    if not await self._retry(tally, provider, attempt, exc):
                        break
                    attempt += 1
                    continue
                self._succeeded(provider, started)
                return transcript
        raise self._exhausted(tally, "stt")
