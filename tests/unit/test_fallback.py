"""Fallback chains with fake engines: budgets, retries, breakers, probes, never replaying."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from hark.config import FallbackSettings, ProviderConfig
from hark.engines.base import ChatMessage, LLMChunk, LLMOptions, ToolCall, ToolSpec, Transcript
from hark.engines.fallback import FallbackLLM, FallbackSTT, FallbackTTS
from hark.engines.provider_health import CircuitBreaker
from hark.errors import EngineError, EngineSaturated, EngineUnavailable, WorkShed
from hark.pipeline.thinking import Thought, think
from hark.pipeline.tools import Tool, Toolbox
from hark.priority import Priority, current_budget, current_work, may_refuse, work_as
from tests.fakes import FakeLLM, FakeSTT, FakeTTS

FAST = FallbackSettings(
    attempts=2, backoff_s=0.01, backoff_max_s=0.05, breaker_failures=3, probe_interval_s=0.05
)


def cfg(name: str, timeout: float = 0.3, total: float = 5.0) -> ProviderConfig:
    return ProviderConfig(kind="fake", name=name, timeout=timeout, total_timeout=total)


async def collect(stream: Any) -> list[Any]:
    return [item async for item in stream]


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def test_breaker_opens_after_threshold_or_one_stall() -> None:
    breaker = CircuitBreaker(3)
    assert not breaker.failure() and not breaker.failure()
    assert breaker.failure() and breaker.is_open
    breaker.success()
    assert not breaker.is_open and breaker.consecutive_failures == 0
    assert breaker.failure(stalled=True) and breaker.is_open


async def test_first_provider_answers() -> None:
    a, b = FakeLLM(name="a"), FakeLLM(name="b", chunks=("other",))
    chain = FallbackLLM([(cfg("a"), a), (cfg("b"), b)], FAST)
    assert await collect(chain.stream([])) == ["Hello", " there", "."]
    assert len(b.calls) == 0
    assert chain.status()[0]["successes"] == 1


async def test_stalled_provider_is_abandoned_at_its_budget_then_skipped_until_probed() -> None:
    stalled, working = FakeLLM(name="stalled", stall=True), FakeLLM(name="working", chunks=("ok",))
    chain = FallbackLLM([(cfg("stalled", timeout=0.25), stalled), (cfg("working"), working)], FAST)
    started = time.monotonic()
    assert await collect(chain.stream([])) == ["ok"]
    took = time.monotonic() - started
    assert 0.25 * 0.8 <= took <= 0.25 * 1.2 + 0.05
    assert chain.status()[0]["circuit"] == "open"
    assert chain.status()[0]["failures"] == {"timeout": 1}
    # The next request skips it: no second wait.
    started = time.monotonic()
    assert await collect(chain.stream([])) == ["ok"]
    assert time.monotonic() - started < 0.1
    assert len(stalled.calls) == 1
    # The probe finds it healthy again (check() passes once it stops stalling) and it is used.
    stalled.stall = False
    await chain.probe_open()
    assert chain.status()[0]["circuit"] == "closed"
    assert await collect(chain.stream([])) == ["Hello", " there", "."]
    await chain.aclose()


async def test_background_probe_restores_a_provider() -> None:
    flaky = FakeLLM(name="flaky", fail_before=EngineUnavailable("down"), healthy=False)
    chain = FallbackLLM(
        [(cfg("flaky"), flaky), (cfg("b"), FakeLLM(name="b"))],
        FAST.model_copy(update={"breaker_failures": 1}),
    )
    await collect(chain.stream([]))
    assert chain.status()[0]["circuit"] == "open"
    flaky.healthy, flaky.fail_before = True, None
    deadline = time.monotonic() + 2
    while chain.status()[0]["circuit"] == "open" and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert chain.status()[0]["circuit"] == "closed"
    await chain.aclose()


async def test_retryable_failures_retry_with_backoff_and_jitter() -> None:
    sleeps = Sleeps()
    failing = FakeLLM(name="a", fail_before=EngineError("503", retryable=True))
    chain = FallbackLLM(
        [(cfg("a"), failing), (cfg("b"), FakeLLM(name="b", chunks=("b",)))],
        FAST.model_copy(update={"attempts": 3, "backoff_s": 0.1, "backoff_max_s": 10}),
        sleep=sleeps,
        jitter=lambda: 0.5,
    )
    assert await collect(chain.stream([])) == ["b"]
    assert len(failing.calls) == 3
    assert sleeps.delays == [0.05, 0.1]  # 0.1 * 2**n, times the jitter draw


async def test_retry_after_is_honoured_and_a_long_one_moves_on() -> None:
    sleeps = Sleeps()
    limited = FakeLLM(name="a", fail_before=EngineError("429", retryable=True, retry_after=0.04))
    chain = FallbackLLM([(cfg("a"), limited), (cfg("b"), FakeLLM(name="b"))], FAST, sleep=sleeps)
    await collect(chain.stream([]))
    assert sleeps.delays == [0.04]
    sleeps.delays.clear()
    limited.fail_before = EngineError("429", retryable=True, retry_after=30)
    limited.calls.clear()
    await collect(chain.stream([]))
    assert sleeps.delays == [] and len(limited.calls) == 1


async def test_final_errors_are_not_retried_but_the_next_provider_is_tried() -> None:
    sleeps = Sleeps()
    bad_key = FakeLLM(name="a", fail_before=EngineError("401", retryable=False))
    chain = FallbackLLM(
        [(cfg("a"), bad_key), (cfg("b"), FakeLLM(name="b", chunks=("b",)))], FAST, sleep=sleeps
    )
    assert await collect(chain.stream([])) == ["b"]
    assert len(bad_key.calls) == 1 and sleeps.delays == []
    assert chain.status()[0]["failures"] == {"final": 1}


async def test_failure_after_delivery_is_never_replayed_elsewhere() -> None:
    broken = FakeLLM(name="a", chunks=("one", " two", " three"), fail_after=2)
    other = FakeLLM(name="b", chunks=("one", " two", " three"))
    chain = FallbackLLM([(cfg("a"), broken), (cfg("b"), other)], FAST)
    got: list[Any] = []
    with pytest.raises(EngineError, match="mid-stream") as info:
        async for chunk in chain.stream([]):
            got.append(chunk)
    assert got == ["one", " two"]
    assert info.value.retryable is False
    assert other.calls == []


async def test_all_providers_down_raise_within_budget() -> None:
    chain = FallbackLLM(
        [
            (cfg("a", timeout=0.1), FakeLLM(name="a", stall=True)),
            (cfg("b"), FakeLLM(name="b", fail_before=EngineUnavailable("refused"))),
        ],
        FAST,
    )
    started = time.monotonic()
    with pytest.raises(EngineUnavailable, match="every llm provider failed"):
        await collect(chain.stream([]))
    assert time.monotonic() - started < 0.5


async def test_all_circuits_open_still_tries_them_all() -> None:
    a = FakeLLM(name="a", fail_before=EngineError("500", retryable=True))
    chain = FallbackLLM([(cfg("a"), a)], FAST.model_copy(update={"breaker_failures": 1, "attempts": 1}))
    with pytest.raises(EngineError):
        await collect(chain.stream([]))
    assert chain.status()[0]["circuit"] == "open"
    a.fail_before = None
    assert await collect(chain.stream([])) == ["Hello", " there", "."]
    assert chain.status()[0]["circuit"] == "closed"
    await chain.aclose()


async def test_reorder_changes_who_answers_first() -> None:
    chain = FallbackLLM(
        [(cfg("a"), FakeLLM(name="a", chunks=("a",))), (cfg("b"), FakeLLM(name="b", chunks=("b",)))], FAST
    )
    chain.reorder(["b", "a"])
    assert await collect(chain.stream([])) == ["b"]
    with pytest.raises(ValueError, match="each provider once"):
        chain.reorder(["b"])


async def test_duplicate_labels_are_made_unique() -> None:
    chain = FallbackLLM([(cfg("x"), FakeLLM()), (cfg("x"), FakeLLM())], FAST)
    assert [s["name"] for s in chain.status()] == ["x", "x-2"]


async def test_tts_chain_falls_back_and_resamples_to_one_rate() -> None:
    first = FakeTTS(name="a", sample_rate=24_000, stall=True)
    second = FakeTTS(name="b", sample_rate=16_000, ms_per_char=100)
    chain = FallbackTTS([(cfg("a", timeout=0.1), first), (cfg("b"), second)], FAST)
    assert chain.sample_rate == 24_000
    pcm = b"".join(await collect(chain.synthesize("hi")))
    # 2 chars * 100 ms at 16 kHz, resampled to 24 kHz: about 0.2 s of 24 kHz samples.
    assert abs(len(pcm) / 2 / 24_000 - 0.2) < 0.01


async def test_tts_mid_stream_failure_is_not_replayed() -> None:
    chain = FallbackTTS([(cfg("a"), FakeTTS(name="a", fail_after=1)), (cfg("b"), FakeTTS(name="b"))], FAST)
    chunks: list[bytes] = []
    with pytest.raises(EngineError, match="mid-stream"):
        async for chunk in chain.synthesize("hello"):
            chunks.append(chunk)
    assert len(chunks) == 1


async def test_stt_chain_budget_and_fallback() -> None:
    slow = FakeSTT(name="slow", stall=True)
    good = FakeSTT(name="good", text="from the second")
    chain = FallbackSTT([(cfg("slow", timeout=0.1), slow), (cfg("good"), good)], FAST)
    transcript = await chain.transcribe(np.zeros(1600, dtype=np.float32))
    assert transcript.text == "from the second"
    assert chain.status()[0]["circuit"] == "open"
    bad = FallbackSTT([(cfg("bad"), FakeSTT(fail=EngineError("400", retryable=False)))], FAST)
    with pytest.raises(EngineError, match="every stt provider failed: bad \\(final: 400\\)"):
        await bad.transcribe(np.zeros(1600, dtype=np.float32))


async def test_stt_chain_passes_deterministic_on() -> None:
    down = FakeSTT(name="down", fail=EngineError("503", retryable=False))
    good = FakeSTT(name="good")
    chain = FallbackSTT([(cfg("down"), down), (cfg("good"), good)], FAST)
    await chain.transcribe(np.zeros(1600, dtype=np.float32), deterministic=True)
    await chain.transcribe(np.zeros(1600, dtype=np.float32))
    assert down.deterministic == [True, False]
    assert good.deterministic == [True, False]


async def test_check_reports_unreachable_chain() -> None:
    chain = FallbackLLM([(cfg("a"), FakeLLM(healthy=False)), (cfg("b"), FakeLLM(healthy=False))], FAST)
    with pytest.raises(EngineUnavailable, match="no provider is reachable"):
        await chain.check()
    chain.providers[1].engine.healthy = True  # type: ignore[attr-defined]
    await chain.check()


# -- tool calls through a chain: offered to the provider, never run twice ----------------------


@dataclass
class CallThenFail:
    """Asks for a tool and then fails mid-stream (call 1); answers normally later."""

    name: str = "flaky"
    calls: list[LLMOptions | None] = field(default_factory=list)

    async def stream(self, messages: Any, options: LLMOptions | None = None) -> AsyncIterator[LLMChunk]:
        self.calls.append(options)
        if len(self.calls) == 1:
            yield ToolCall("call_1", "count", "{}")
            raise EngineError("connection reset", retryable=True, engine=self.name)
        raise EngineError("still down", retryable=True, engine=self.name)

    async def check(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


def counting_toolbox() -> tuple[Toolbox, list[dict[str, Any]]]:
    runs: list[dict[str, Any]] = []

    async def count(args: dict[str, Any]) -> str:
        runs.append(args)
        return str(len(runs))

    spec = ToolSpec("count", "Counts its calls.", {"type": "object", "properties": {}})
    return Toolbox([Tool(spec, count)]), runs


async def test_tools_and_tool_choice_reach_the_provider() -> None:
    a = FakeLLM(name="a")
    chain = FallbackLLM([(cfg("a"), a)], FAST)
    spec = ToolSpec("get_weather", "", {"type": "object"})
    await collect(chain.stream([], LLMOptions(tools=(spec,), tool_choice="get_weather")))
    assert a.options == [LLMOptions(tools=(spec,), tool_choice="get_weather")]


async def test_a_tool_call_delivered_before_a_failure_is_never_run_or_replayed() -> None:
    flaky, other = CallThenFail(), FakeLLM(name="other", scripts=[(ToolCall("call_2", "count", "{}"),)])
    chain = FallbackLLM([(cfg("flaky"), flaky), (cfg("other"), other)], FAST)
    toolbox, runs = counting_toolbox()
    errors: list[str] = []
    thought = Thought([ChatMessage("user", "count")])
    words = await collect(think(chain, toolbox, thought, user_text="count", on_unavailable=errors.append))
    assert runs == [], "the call came from a stream that failed: not run"
    assert other.calls == [], "nor asked again of the next provider"
    assert words == ["Echo mode: the language model failed to answer. You said: count"] and errors


@dataclass
class CallThenDown:
    """Asks for a tool (call 1), then fails before its first token."""

    name: str = "first"
    calls: int = 0

    async def stream(self, messages: Any, options: LLMOptions | None = None) -> AsyncIterator[LLMChunk]:
        self.calls += 1
        if self.calls > 1:
            raise EngineError("down", retryable=False, engine=self.name)
        yield ToolCall("call_1", "count", "{}")

    async def check(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


async def test_a_tool_runs_once_when_the_next_round_falls_back() -> None:
    first, second = CallThenDown(), FakeLLM(name="second", chunks=("Counted.",))
    chain = FallbackLLM([(cfg("first"), first), (cfg("second"), second)], FAST)
    toolbox, runs = counting_toolbox()
    thought = Thought([ChatMessage("user", "count")])
    words = await collect(think(chain, toolbox, thought, user_text="count", on_unavailable=print))
    assert words == ["Counted."]
    assert runs == [{}], "round 1's call ran once; round 2 fell back without running it again"
    assert second.calls[0][-1] == ChatMessage("tool", "1", tool_call_id="call_1")


# -- saturation is not failure ---------------------------------------------------------------


class FullQueueSTT(FakeSTT):
    """A local engine whose worker queue is full: like the pool, it refuses what may be refused
    (sheddable work, or work a chain marked refusable for spill-over) and serves the rest late."""

    def __init__(self, name: str) -> None:
        super().__init__(name=name, text=f"from {name}")
        self.seen: list[tuple[Priority, bool]] = []

    async def transcribe(
        self, audio: Any, *, language: str | None = None, deterministic: bool = False
    ) -> Transcript:
        work = current_work()
        self.seen.append((work.priority, may_refuse()))
        if work.priority.sheddable:
            raise WorkShed("partial work shed", engine=self.name)
        if may_refuse():
            raise EngineSaturated("queue full", engine=self.name, retry_after=0.5)
        return await super().transcribe(audio, language=language, deterministic=deterministic)


AUDIO = np.zeros(1600, dtype=np.float32)
SPILL = FAST.model_copy(update={"spill_over": True})


async def test_saturation_never_opens_a_circuit_nor_is_retried() -> None:
    local = FullQueueSTT("local")
    chain = FallbackSTT([(cfg("local"), local)], FAST.model_copy(update={"breaker_failures": 1}))
    for _ in range(5):
        with work_as(Priority.PARTIAL), pytest.raises(EngineSaturated, match="saturated: partial work shed"):
            await chain.transcribe(AUDIO)
    status = chain.status()[0]
    assert status["circuit"] == "closed" and status["failures"] == {}
    assert status["saturated"] == 5 and status["spilled"] == 0
    assert len(local.seen) == 5  # no retries: waiting would not make room
    # A finished turn's transcript is served by the one provider, late but not refused.
    with work_as(Priority.FINAL):
        assert (await chain.transcribe(AUDIO)).text == "from local"
    assert local.seen[-1] == (Priority.FINAL, False)


async def test_real_faults_still_open_the_circuit() -> None:
    broken = FakeSTT(name="broken", fail=EngineError("500", retryable=True))
    chain = FallbackSTT(
        [(cfg("broken"), broken)], FAST.model_copy(update={"breaker_failures": 2, "attempts": 1})
    )
    for _ in range(2):
        with pytest.raises(EngineError):
            await chain.transcribe(AUDIO)
    assert chain.status()[0]["circuit"] == "open" and chain.status()[0]["saturated"] == 0


async def test_spill_over_sends_owed_work_to_the_next_provider_when_configured() -> None:
    local, cloud = FullQueueSTT("local"), FakeSTT(name="cloud", text="from the cloud")
    chain = FallbackSTT([(cfg("local"), local), (cfg("cloud"), cloud)], SPILL)
    with work_as(Priority.FINAL):
        assert (await chain.transcribe(AUDIO)).text == "from the cloud"
    assert local.seen == [(Priority.FINAL, True)]  # the local queue was told it may refuse
    local_status = chain.status()[0]
    assert local_status["saturated"] == 1 and local_status["spilled"] == 1
    assert local_status["circuit"] == "closed"
    # Sheddable work is dropped, never sent to a (paid) provider.
    with work_as(Priority.PARTIAL), pytest.raises(EngineSaturated):
        await chain.transcribe(AUDIO)
    assert cloud.calls == 1
    # Without spill-over the final waits for the local engine; the cloud is not used.
    chain = FallbackSTT([(cfg("local"), local), (cfg("cloud"), cloud)], FAST)
    with work_as(Priority.FINAL):
        assert (await chain.transcribe(AUDIO)).text == "from local"
    assert local.seen[-1] == (Priority.FINAL, False) and cloud.calls == 1


async def test_every_provider_saturated_is_a_saturation_error_with_its_wait() -> None:
    also_full = FakeSTT(name="b", fail=EngineSaturated("queue full", engine="b", retry_after=1.5))
    chain = FallbackSTT([(cfg("a"), FullQueueSTT("a")), (cfg("b"), also_full)], SPILL)
    with work_as(Priority.FINAL), pytest.raises(EngineSaturated) as caught:
        await chain.transcribe(AUDIO)
    assert caught.value.retry_after == 1.5 and "every stt provider failed" in str(caught.value)
    assert [s["circuit"] for s in chain.status()] == ["closed", "closed"]


async def test_tts_saturation_spills_over_before_any_audio() -> None:
    busy = FakeTTS(name="busy", fail_before=EngineSaturated("queue full", engine="busy"))
    chain = FallbackTTS([(cfg("busy"), busy), (cfg("spare"), FakeTTS(name="spare"))], SPILL)
    assert await collect(chain.synthesize("hi"))
    assert chain.status()[0]["spilled"] == 1 and chain.status()[0]["circuit"] == "closed"
    alone = FallbackTTS([(cfg("busy"), busy)], SPILL.model_copy(update={"breaker_failures": 1}))
    with pytest.raises(EngineSaturated):
        await collect(alone.synthesize("hi"))
    assert alone.status()[0]["circuit"] == "closed"


class LineSTT(FakeSTT):
    """A local engine with a line: the request waits ``wait`` s for a worker, then takes
    ``delay`` s; like the pool, it pauses the caller's budget while the request waits."""

    def __init__(self, wait: float, delay: float) -> None:
        super().__init__(name="line", delay=delay)
        self.wait = wait

    async def transcribe(
        self, audio: Any, *, language: str | None = None, deterministic: bool = False
    ) -> Transcript:
        line = current_budget()
        assert line is not None
        line.pause()
        await asyncio.sleep(self.wait)
        line.restart()
        return await super().transcribe(audio, language=language, deterministic=deterministic)


async def test_waiting_in_a_local_line_does_not_count_toward_the_budget_but_running_does() -> None:
    settings = FAST.model_copy(update={"breaker_failures": 1, "attempts": 1})
    late = FallbackSTT([(cfg("line", timeout=0.2), LineSTT(wait=0.4, delay=0.05))], settings)
    assert (await late.transcribe(AUDIO)).text == "hello world"  # late, not a stall
    assert late.status()[0]["circuit"] == "closed"
    stalled = FallbackSTT([(cfg("line", timeout=0.2), LineSTT(wait=0.1, delay=0.4))], settings)
    with pytest.raises(EngineError):
        await stalled.transcribe(AUDIO)
    assert stalled.status()[0]["circuit"] == "open" and stalled.status()[0]["failures"] == {"timeout": 1}
