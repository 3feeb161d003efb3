"""Piper streams a sentence in pieces, from its worker process to /v1/audio/speech."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import cast

import numpy as np
import openai
import pytest

from hark.audio import decode_audio_file
from hark.config import Settings
from hark.engines import registry
from hark.workers import PooledTTS, WorkerPool, pooled_engines
from tests.servers import HarkProcess

pytestmark = pytest.mark.slow

SENTENCE = "Paris is sunny and mild today, and you will not need an umbrella."


async def test_piper_in_a_worker_streams_a_sentence_in_pieces() -> None:
    settings = Settings()
    pool = WorkerPool(
        [("tts", settings.tts.providers[0])],
        settings,
        processes=1,
        queue_limit=4,
        request_timeout_s=60.0,
        factory=registry.build,
    )
    await pool.start()
    try:
        (tts,) = pooled_engines(pool)
        assert isinstance(tts, PooledTTS)
        pieces = [chunk async for chunk in tts.synthesize(SENTENCE)]
        assert len(pieces) > 1 and all(len(p) % 2 == 0 for p in pieces)
        assert 2.0 < sum(map(len, pieces)) / 2 / tts.sample_rate < 8.0
        # Abandoning a stream part-way leaves the worker serving the next request.
        stream = cast(AsyncGenerator[bytes, None], tts.synthesize(SENTENCE))  # typed as AsyncIterator
        assert await anext(stream)
        await stream.aclose()
        assert b"".join([chunk async for chunk in tts.synthesize("Still here.")])
        assert pool.size == 1 and pool.restarts == 0
    finally:
        await pool.aclose()


def _seconds(data: bytes, fmt: str) -> float:
    if fmt == "pcm":
        return len(data) / 2 / 24_000
    return len(decode_audio_file(data, 24_000)) / 24_000


@pytest.mark.parametrize("fmt", ["pcm", "wav", "mp3", "opus", "aac", "flac"])
async def test_one_sentence_streamed_in_pieces_decodes_whole(hark_server: HarkProcess, fmt: str) -> None:
    api = openai.AsyncOpenAI(base_url=hark_server.base_url + "/v1", api_key="none", max_retries=0)
    async with api:
        async with api.audio.speech.with_streaming_response.create(
            model="tts-1",
            voice="alloy",
            input=SENTENCE,
            response_format=fmt,  # type: ignore[arg-type]
        ) as response:
            data = b"".join([chunk async for chunk in response.iter_bytes()])
        pcm = await api.audio.speech.create(
            model="tts-1", voice="alloy", input=SENTENCE, response_format="pcm"
        )
    reference = len(pcm.content) / 2 / 24_000
    # The same sentence's duration varies by phoneme-duration noise; codecs add up to ~90 ms.
    assert abs(_seconds(data, fmt) - reference) < 0.25 * reference + 0.12
    if fmt == "pcm":
        level = np.abs(np.frombuffer(data, "<i2")).max() / 32768.0
        assert 0.3 < level < 0.999
