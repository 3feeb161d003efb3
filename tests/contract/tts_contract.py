"""What every streaming TTS engine must do against its loopback stand-in.

A provider's test module subclasses a contract as ``Test...`` and sets the class attributes; the
tests then run with that module's ``fake`` (a ``FakeTTS``) and ``make`` (builds the engine)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, ClassVar

import pytest

from hark.config import ProviderConfig, Settings
from hark.engines.base import TTS
from hark.errors import ConfigError, EngineError, EngineUnavailable
from tests.contract.faults import Fault
from tests.contract.servers.common import FakeTTS, collect
from tests.servers import free_port

TEXT = "Hello there, this is a streaming test."
Make = Callable[..., Any]


class StreamingTTSContract:
    engine: ClassVar[str]
    """The engine's default name (and its provider kind)."""
    engine_class: ClassVar[Any]
    key_env: ClassVar[str]
    voice: ClassVar[str | None] = None
    """The voice, where the engine cannot be built without one."""
    closed_url: ClassVar[str]
    """A base URL on a closed port, with ``{port}`` for the port."""
    sent_test_key: ClassVar[str]
    """How a request carries the key ``test-key`` (see ``sent_key``)."""

    def sent_key(self, fake: Any) -> str | None:
        """How the first request carried its key, as the stand-in recorded it."""
        raise NotImplementedError

    async def test_streams_whole_samples_in_several_chunks(self, fake: FakeTTS, make: Make) -> None:
        tts = make()
        assert isinstance(tts, TTS) and tts.capabilities.streaming and tts.sample_rate == 24000
        chunks = await collect(tts.synthesize(TEXT))
        assert len(chunks) >= 3
        assert all(len(c) % 2 == 0 and c for c in chunks)
        assert sum(map(len, chunks)) == fake.last.sent == len(TEXT) * 24000 * 10 // 1000 * 2
        assert fake.last.done

    async def test_first_chunk_arrives_before_the_server_finishes(self, fake: FakeTTS, make: Make) -> None:
        fake.gate = threading.Event()  # The server holds after its first piece until released.
        stream = make().synthesize(TEXT)
        first = await anext(stream)
        assert first and not fake.last.done
        fake.gate.set()
        rest = await collect(stream)
        assert fake.last.done and len(first) + sum(map(len, rest)) == fake.last.sent

    async def test_api_key_from_the_environment(
        self, fake: FakeTTS, make: Make, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv(self.key_env, "test-key")
        await collect(make(api_key=None).synthesize("Hi."))
        assert self.sent_key(fake) == self.sent_test_key

    def test_missing_key_names_the_variable(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv(self.key_env, raising=False)
        with pytest.raises(ConfigError, match=self.key_env):
            self.engine_class.from_config(ProviderConfig(kind=self.engine, voice=self.voice), Settings())

    async def test_wrong_key_is_final(self, fake: FakeTTS, make: Make) -> None:
        with pytest.raises(EngineError, match="401") as caught:
            await collect(make(api_key="wrong").synthesize(TEXT))
        assert caught.value.retryable is False and caught.value.engine == self.engine

    async def test_http_500_is_retryable(self, fake: FakeTTS, make: Make) -> None:
        fake.faults.set(Fault.HTTP_500)
        with pytest.raises(EngineError, match="500") as caught:
            await collect(make().synthesize(TEXT))
        assert caught.value.retryable is True

    async def test_http_429_carries_retry_after(self, fake: FakeTTS, make: Make) -> None:
        fake.faults.set(Fault.HTTP_429, retry_after=3)
        with pytest.raises(EngineError, match="429") as caught:
            await collect(make().synthesize(TEXT))
        assert caught.value.retryable is True and caught.value.retry_after == 3.0
        assert fake.faults.requests == 1  # Nothing retried on its own.

    async def test_stall_times_out_on_the_first_byte_budget(self, fake: FakeTTS, make: Make) -> None:
        fake.faults.set(Fault.STALL)
        started = time.monotonic()
        with pytest.raises(EngineError, match="before the first byte") as caught:
            await collect(make(timeout=0.3, total_timeout=1.0).synthesize(TEXT))
        assert caught.value.retryable is True
        assert time.monotonic() - started < 1.0 + 2.0  # Well short of a hang; slack for a loaded machine.

    async def test_stall_mid_stream_hits_the_total_timeout(self, fake: FakeTTS, make: Make) -> None:
        fake.gate = threading.Event()  # Never set: the stream stops after its first piece.
        received: list[bytes] = []
        with pytest.raises(EngineError, match="mid-stream") as caught:
            async for chunk in make(timeout=0.5, total_timeout=0.8).synthesize(TEXT):
                received.append(chunk)
        assert caught.value.retryable is True and received
        fake.gate.set()

    async def test_slow_first_byte_within_and_past_the_budget(self, fake: FakeTTS, make: Make) -> None:
        fake.faults.set(Fault.SLOW_FIRST_BYTE, delay=0.4)
        assert await collect(make(timeout=2.0).synthesize(TEXT))
        with pytest.raises(EngineError, match="before the first byte") as caught:
            await collect(make(timeout=0.1).synthesize(TEXT))
        assert caught.value.retryable is True

    async def test_check(self, fake: FakeTTS, make: Make) -> None:
        await make().check()
        with pytest.raises(EngineError, match="401") as caught:
            await make(api_key="wrong").check()
        assert caught.value.retryable is False
        assert fake.requests == []  # No speech was paid for.

    async def test_closed_port_is_unavailable(self, make: Make) -> None:
        tts = make(base_url=self.closed_url.format(port=free_port()))
        with pytest.raises(EngineUnavailable):
            await tts.check()
        with pytest.raises(EngineUnavailable):
            await collect(tts.synthesize(TEXT))


class HTTPStreamingTTSContract(StreamingTTSContract):
    """Engines that stream PCM16 as an HTTP response body."""

    @pytest.mark.parametrize(
        ("status", "retryable"), [(400, False), (401, False), (403, False), (408, True), (503, True)]
    )
    async def test_status_errors(self, fake: FakeTTS, make: Make, status: int, retryable: bool) -> None:
        fake.fail_status = status
        with pytest.raises(EngineError, match=str(status)) as caught:
            await collect(make().synthesize(TEXT))
        assert caught.value.retryable is retryable and not isinstance(caught.value, EngineUnavailable)

    async def test_malformed_stream_fails_after_the_audio(self, fake: FakeTTS, make: Make) -> None:
        fake.faults.set(Fault.MALFORMED)
        received: list[bytes] = []
        with pytest.raises(EngineError, match="whole PCM16 samples") as caught:
            async for chunk in make().synthesize(TEXT):
                received.append(chunk)
        assert caught.value.retryable is True
        assert sum(map(len, received)) >= fake.last.sent > 0

    async def test_disconnect_mid_stream_fails_after_the_audio(self, fake: FakeTTS, make: Make) -> None:
        fake.faults.set(Fault.DISCONNECT)
        received: list[bytes] = []
        with pytest.raises(EngineError, match="broke off") as caught:
            async for chunk in make().synthesize(TEXT):
                received.append(chunk)
        assert caught.value.retryable is True and not isinstance(caught.value, EngineUnavailable)
        assert 0 < sum(map(len, received)) <= fake.last.sent and not fake.last.done
