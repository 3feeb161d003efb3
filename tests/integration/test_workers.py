"""The real local engines (faster-whisper, Piper) served from a worker process."""

from __future__ import annotations

import os

import numpy as np
import pytest
import soxr

from hark.config import Settings
from hark.engines import registry
from hark.workers import PooledSTT, PooledTTS, WorkerPool, pooled_engines

pytestmark = pytest.mark.slow


async def test_default_local_engines_warm_up_and_speak_and_listen_in_a_worker() -> None:
    settings = Settings()
    pool = WorkerPool(
        [("stt", settings.stt.providers[0]), ("tts", settings.tts.providers[0])],
        settings,
        processes=1,
        queue_limit=4,
        request_timeout_s=60.0,
        factory=registry.build,
    )
    assert not pool.ready
    await pool.start()
    try:
        assert pool.ready and pool.size == 1
        # The parent holds proxies only; the models live in another process.
        stt, tts = pooled_engines(pool)
        assert isinstance(stt, PooledSTT) and isinstance(tts, PooledTTS)
        assert all(pid != os.getpid() for pid in pool.pids())
        assert (stt.name, stt.sample_rate) == ("faster-whisper", 16_000)
        assert (tts.name, tts.sample_rate) == ("piper", 22_050)

        pcm = b"".join([chunk async for chunk in tts.synthesize("Hello from a worker.")])
        assert len(pcm) % 2 == 0 and len(pcm) / 2 / tts.sample_rate > 0.5

        speech = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
        audio = soxr.resample(speech, tts.sample_rate, stt.sample_rate).astype(np.float32)
        transcript = await stt.transcribe(audio)
        assert "hello" in transcript.text.lower()
    finally:
        await pool.aclose()
    assert not pool.ready and pool.size == 0
