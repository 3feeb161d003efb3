"""What every streaming LLM engine must do against its loopback stand-in.

A provider's test module subclasses a contract as ``Test...`` and sets the class attributes; the
tests then run with that module's ``fake`` (a ``FakeLLM``) and ``make`` (builds the engine)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any, ClassVar

import pytest

from hark.config import ProviderConfig, Settings
from hark.engines import registry
from hark.engines.base import LLM, ChatMessage, LLMChunk, LLMOptions, ToolSpec
from hark.errors import ConfigError, EngineError, EngineUnavailable
from tests.contract.faults import Fault
from tests.contract.servers.common import REPLY, FakeLLM
from tests.servers import free_port

ASK = (ChatMessage("system", "Be brief."), ChatMessage("user", "What is the weather in Paris?"))
WEATHER = ToolSpec(
    "get_weather",
    "Current weather for a city",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
Make = Callable[..., Any]


async def collect(
    llm: LLM, messages: tuple[ChatMessage, ...] = ASK, options: LLMOptions | None = None
) -> list[LLMChunk]:
    return [chunk async for chunk in llm.stream(messages, options)]


async def failure(llm: LLM, messages: tuple[ChatMessage, ...] = ASK) -> tuple[list[LLMChunk], EngineError]:
    """What streamed before the engine raised, and what it raised."""
    chunks: list[LLMChunk] = []
    with pytest.raises(EngineError) as caught:
        async for chunk in llm.stream(messages):
            chunks.append(chunk)
    return chunks, caught.value


class StreamingLLMContract:
    engine: ClassVar[str]
    """The engine's default name (and its provider kind)."""
    key_envs: ClassVar[tuple[str, ...]]
    """The environment variables a key is looked for in, first choice first."""
    fail_status: ClassVar[int] = 400
    """A final status the stand-in injects (``FakeLLM.fail_status``)."""
    bad_key_status: ClassVar[int] = 401
    """What the provider answers a wrong key with."""

    async def test_text_streams_in_deltas(self, fake: FakeLLM, make: Make) -> None:
        chunks = await collect(make())
        assert len(chunks) > 3 and all(isinstance(c, str) for c in chunks)
        assert "".join(str(c) for c in chunks) == REPLY

    @pytest.mark.parametrize(("fault", "status"), [(Fault.HTTP_500, 500), (Fault.HTTP_429, 429)])
    async def test_server_trouble_is_retryable(
        self, fake: FakeLLM, make: Make, fault: Fault, status: int
    ) -> None:
        fake.faults.set(fault, retry_after=7)
        chunks, error = await failure(make())
        assert chunks == [] and error.retryable and str(status) in str(error)
        assert error.engine == self.engine
        assert error.retry_after == (7.0 if status == 429 else None)

    async def test_bad_request_and_bad_key_are_final(self, fake: FakeLLM, make: Make) -> None:
        fake.fail_status = self.fail_status
        _, error = await failure(make())
        assert not error.retryable and str(self.fail_status) in str(error)
        fake.fail_status = None
        _, error = await failure(make(api_key="wrong-key"))
        assert not error.retryable and str(self.bad_key_status) in str(error)

    async def test_connection_refused_is_unavailable(self, make: Make) -> None:
        _, error = await failure(make(base_url=f"http://127.0.0.1:{free_port()}"))
        assert isinstance(error, EngineUnavailable)

    @pytest.mark.parametrize("fault", [Fault.MALFORMED, Fault.DISCONNECT])
    async def test_broken_stream_raises_after_the_text_so_far(
        self, fake: FakeLLM, make: Make, fault: Fault
    ) -> None:
        fake.faults.set(fault)
        chunks, error = await failure(make())
        text = "".join(str(c) for c in chunks)
        assert text and REPLY.startswith(text) and text != REPLY
        assert error.retryable and not isinstance(error, EngineUnavailable)

    async def test_stall_times_out(self, fake: FakeLLM, make: Make) -> None:
        fake.faults.set(Fault.STALL)
        started = time.monotonic()
        _, error = await failure(make(timeout=1.0))
        assert error.retryable and "timed out" in str(error)
        assert time.monotonic() - started < 4

    async def test_slow_first_byte_within_the_timeout_is_fine(self, fake: FakeLLM, make: Make) -> None:
        fake.faults.set(Fault.SLOW_FIRST_BYTE, delay=0.4)
        assert "".join(str(c) for c in await collect(make(timeout=1.0))) == REPLY

    async def test_check(self, fake: FakeLLM, make: Make) -> None:
        await make().check()
        assert fake.requests == []  # Listing models is not recorded as a chat request.
        with pytest.raises(EngineUnavailable):
            await make(base_url=f"http://127.0.0.1:{free_port()}").check()

    async def test_key_comes_from_the_environment(
        self, fake: FakeLLM, make: Make, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        for env in self.key_envs:
            monkeypatch.delenv(env, raising=False)
        with pytest.raises(ConfigError, match=" or ".join(self.key_envs)):
            make(api_key=None)
        monkeypatch.setenv(self.key_envs[0], "test-key")
        assert "".join(str(c) for c in await collect(make(api_key=None))) == REPLY


class SDKLLMContract(StreamingLLMContract):
    """Engines on a vendor SDK that is an optional extra, with their own ``total_timeout``."""

    engine_class: ClassVar[Any]
    model: ClassVar[str]
    """The model the stand-in serves."""
    sdk_module: ClassVar[str]
    """The module whose absence the engine must explain."""
    extra: ClassVar[str]
    """hark's extra that installs it."""

    async def test_total_timeout_bounds_a_trickling_stream(self, fake: FakeLLM, make: Make) -> None:
        # The reply's ~11 words at 0.3 s each would take ~3 s; the attempt may take 1.2 s. (A
        # budget well above the first token's arrival keeps this steady on a loaded machine.)
        fake.token_delay = 0.3
        started = time.monotonic()
        chunks, error = await failure(make(timeout=1.0, total_timeout=1.2))
        assert chunks and error.retryable and "total_timeout" in str(error)
        assert time.monotonic() - started < 2.5

    def test_model_is_required(self) -> None:
        with pytest.raises(ConfigError, match="model"):
            self.engine_class.from_config(ProviderConfig(kind=self.engine, api_key="k"), Settings())

    async def test_registry_builds_it(self) -> None:
        engine = registry.build(
            "llm", ProviderConfig(kind=self.engine, api_key="k", model=self.model), Settings()
        )
        assert isinstance(engine, self.engine_class) and isinstance(engine, LLM)
        await engine.aclose()

    def test_missing_sdk_says_how_to_install_it(self) -> None:
        name, module = self.engine_class.__name__, self.engine_class.__module__
        code = (
            f"import sys; sys.modules['{self.sdk_module}'] = None\n"
            "from hark.config import ProviderConfig, Settings\n"
            f"from {module} import {name}\n"
            f"{name}.from_config(ProviderConfig(kind='{self.engine}', api_key='k', model='m'), Settings())\n"
        )
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        assert result.returncode != 0
        assert "MissingDependency" in result.stderr and f"pip install 'hark[{self.extra}]'" in result.stderr
