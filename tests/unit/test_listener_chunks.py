"""The listener resamples client audio only when it completes a VAD chunk: the chunks are the
ones resampling every frame would give, on the same frames."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hark.audio import pcm16_to_float
from hark.audio.polyphase import CausalResampler
from hark.engines.base import Float32Array, VADStream
from hark.pipeline.listener import Listener
from hark.pipeline.turns import TurnConfig


class RecordingVAD:
    sample_rate = 16_000
    chunk_samples = 512

    def __init__(self) -> None:
        self.chunks: list[Float32Array] = []
        self.calls = 0

    def new_stream(self) -> VADStream:
        return VADStream(state=np.zeros(1, dtype=np.float32), context=np.zeros(1, dtype=np.float32))

    async def probabilities(self, stream: VADStream, chunks: Sequence[Float32Array]) -> list[float]:
        self.calls += 1
        self.chunks.extend(chunks)
        return [0.0] * len(chunks)

    async def aclose(self) -> None:
        return None


async def test_chunks_are_the_same_and_complete_on_the_same_frames() -> None:
    rng = np.random.default_rng(5)
    pcm = (rng.standard_normal(24_000 * 2) * 4000).astype("<i2").tobytes()
    vad = RecordingVAD()
    listener = Listener(vad, TurnConfig(), input_rate=24_000, prefix_ms=300, max_turn_s=30)
    counter = CausalResampler(24_000, 16_000)  # when each chunk is complete, frame by frame
    sizes = [960, 480, 1920, 962, 958, 4800, 2] + [960] * 40
    offset = resampled = 0
    for size in sizes:
        frame = pcm[offset : offset + size]
        offset += size
        calls, complete_before = vad.calls, resampled // 512
        resampled += len(counter.process(pcm16_to_float(frame)))
        await listener.push(frame)
        assert (vad.calls > calls) == (resampled // 512 > complete_before)
    whole = CausalResampler(24_000, 16_000).process(pcm16_to_float(pcm[:offset]))
    expected = [whole[i * 512 : (i + 1) * 512] for i in range(len(whole) // 512)]
    assert len(vad.chunks) == len(expected)
    for got, want in zip(vad.chunks, expected, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-6)
