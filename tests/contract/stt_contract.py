"""What every cloud STT engine must do against its loopback stand-in.

A provider's test module subclasses the contract as ``Test...`` and sets the class attributes; the
tests then run with that module's ``fake`` and ``make`` fixtures and the shared ``audio``."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, ClassVar

import pytest

from hark.config import ProviderConfig, Settings
from hark.engines.base import Float32Array
from hark.errors import ConfigError, EngineError, EngineUnavailable
from tests.contract.faults import Fault
from tests.servers import free_port

Make = Callable[..., Any]


class STTContract:
    engine: ClassVar[str]
    """The engine's default name (and its provider kind)."""
    engine_class: ClassVar[Any]
    key_env: ClassVar[str]
    closed_url: ClassVar[str]
    """A base URL on a closed port, with ``{port}`` for the port."""
    timed_out: ClassVar[str]
    """What the error says when a result does not come in time."""
    malformed: ClassVar[tuple[str | bytes, ...]]
    """What a MALFORMED fault sends in place of a result (``fake.malformed``), one test case each."""

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "malformed" in metafunc.fixturenames:
            metafunc.parametrize("malformed", self.malformed)

    async def test_a_deterministic_decode_is_accepted_and_changes_nothing(
        self, fake: Any, make: Make, audio: Float32Array
    ) -> None:
        engine = make()
        plain = await engine.transcribe(audio)
        assert plain.text and (await engine.transcribe(audio, deterministic=True)).text == plain.text

    async def test_http_500_is_retryable(self, fake: Any, make: Make, audio: Float32Array) -> None:
        fake.faults.set(Fault.HTTP_500)
        with pytest.raises(EngineError) as caught:
            await make().transcribe(audio)
        assert caught.value.retryable and not isinstance(caught.value, EngineUnavailable)
        assert "500" in str(caught.value) and caught.value.engine == self.engine

    async def test_http_429_carries_retry_after(self, fake: Any, make: Make, audio: Float32Array) -> None:
        fake.faults.set(Fault.HTTP_429, retry_after=3)
        with pytest.raises(EngineError) as caught:
            await make().transcribe(audio)
        assert caught.value.retryable and caught.value.retry_after == 3.0

    async def test_malformed_result_is_retryable(
        self, fake: Any, make: Make, audio: Float32Array, malformed: str | bytes
    ) -> None:
        fake.faults.set(Fault.MALFORMED)
        fake.malformed = malformed
        with pytest.raises(EngineError, match="malformed") as caught:
            await make().transcribe(audio)
        assert caught.value.retryable

    async def test_stall_ends_at_the_result_timeout(self, fake: Any, make: Make, audio: Float32Array) -> None:
        fake.faults.set(Fault.STALL)
        started = time.monotonic()
        with pytest.raises(EngineError, match=self.timed_out) as caught:
            await make(timeout=0.3, total_timeout=30).transcribe(audio)
        assert caught.value.retryable and time.monotonic() - started < 2.0

    @pytest.mark.parametrize(("delay", "ok"), [(0.2, True), (1.2, False)])
    async def test_slow_answer(
        self, fake: Any, make: Make, audio: Float32Array, delay: float, ok: bool
    ) -> None:
        fake.faults.set(Fault.SLOW_FIRST_BYTE, delay=delay)
        stt = make(timeout=0.6)
        if ok:
            assert (await stt.transcribe(audio)).text == fake.transcript
        else:
            with pytest.raises(EngineError, match=self.timed_out):
                await stt.transcribe(audio)

    async def test_closed_port_is_unavailable(self, make: Make, audio: Float32Array) -> None:
        stt = make(base_url=self.closed_url.format(port=free_port()))
        with pytest.raises(EngineUnavailable):
            await stt.transcribe(audio)
        with pytest.raises(EngineUnavailable):
            await stt.check()

    def test_missing_key_names_the_variable(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv(self.key_env, raising=False)
        with pytest.raises(ConfigError, match=self.key_env):
            self.engine_class.from_config(ProviderConfig(kind=self.engine), Settings())
        monkeypatch.delenv("MY_STT_KEY", raising=False)
        with pytest.raises(ConfigError, match="MY_STT_KEY"):
            self.engine_class.from_config(
                ProviderConfig(kind=self.engine, api_key_env="MY_STT_KEY"), Settings()
            )
