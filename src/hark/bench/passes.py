"""Event-loop passes from the end of a turn to its first reply audio, counted in process.

Timing through a server measures the machine as much as hark; the number of times the event
loop goes round between the turn's end and the first ``ResponseAudio`` does not depend on load.
The fakes here take exactly one pass per LLM token and one per TTS sentence, so what is left is
the pipeline's own hand-offs (speed-work entry 18)::

    python -m hark.bench.passes [turns]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import numpy as np

from hark.bench.fakes import DEFAULT_REPLY, ScriptedSTT, ScriptedTTS, first_sentence_token_index, tokens
from hark.engines.base import ChatMessage, Float32Array, LLMChunk, LLMOptions, VADStream
from hark.pipeline import events as ev
from hark.pipeline.conversation import Conversation, ConversationConfig
from hark.pipeline.turns import TurnConfig


class _CountingLoop(asyncio.SelectorEventLoop):
    passes = 0

    def _run_once(self) -> None:
        self.passes += 1
        super()._run_once()  # type: ignore[misc]


class _NoVAD:
    """Client-side turns: the VAD is never asked."""

    sample_rate = 16_000
    chunk_samples = 512

    def new_stream(self) -> VADStream:
        return VADStream(state=np.zeros(1, dtype=np.float32), context=np.zeros(1, dtype=np.float32))

    async def probabilities(self, stream: VADStream, chunks: Sequence[Float32Array]) -> list[float]:
        return [0.0 for _ in chunks]

    async def aclose(self) -> None:
        return None


class _OnePassLLM:
    name = "one-pass"

    async def stream(
        self, messages: Sequence[ChatMessage], options: LLMOptions | None = None
    ) -> AsyncIterator[LLMChunk]:
        for token in tokens(DEFAULT_REPLY):
            await asyncio.sleep(0)
            yield token

    async def check(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


class _OnePassTTS(ScriptedTTS):
    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        await asyncio.sleep(0)
        yield self.audio_for(text)


async def _turn(loop: _CountingLoop) -> tuple[int, float]:
    marks: dict[str, tuple[int, float]] = {}
    done = asyncio.Event()

    def emit(event: ev.Event) -> None:
        if isinstance(event, ev.ResponseAudio) and not done.is_set():
            marks["audio"] = (loop.passes, time.perf_counter())
            done.set()

    config = ConversationConfig(
        system_prompt="Be brief.",
        history_turns=5,
        turn=TurnConfig(),
        prefix_ms=100,
        max_turn_s=10,
        partial_interval_ms=0,
        output_chunk_ms=100,
        output_lead_ms=600,
        speculative_transcript=False,
        speculative_reply=False,
    )
    conversation = Conversation(
        vad=_NoVAD(),
        stt=ScriptedSTT(final_ms=0),
        tts=_OnePassTTS(first_audio_ms=0),
        llm=_OnePassLLM(),
        config=config,
        emit=emit,
    )
    conversation.configure_turns(None)
    await conversation.push_audio(bytes(24_000 // 2 * 2))  # 500 ms
    start = (loop.passes, time.perf_counter())
    conversation.commit()
    await done.wait()
    await conversation.aclose()
    return marks["audio"][0] - start[0], (marks["audio"][1] - start[1]) * 1000.0


def count(turns: int = 30) -> dict[str, Any]:
    """Passes (and milliseconds) from ``commit`` to the first reply audio, over ``turns`` turns."""
    loop = _CountingLoop()
    try:
        results = [loop.run_until_complete(_turn(loop)) for _ in range(turns)]
    finally:
        loop.close()
    passes = [p for p, _ in results]
    fakes = first_sentence_token_index(DEFAULT_REPLY) + 2  # its tokens, one pass each, and the TTS's
    return {
        "passes": statistics.median(passes),
        "passes_range": [min(passes), max(passes)],
        "fakes_passes": fakes,
        "pipeline_passes": statistics.median(passes) - fakes,
        "ms_p50": round(statistics.median(ms for _, ms in results), 2),
    }


if __name__ == "__main__":
    print(count(int(sys.argv[1]) if len(sys.argv) > 1 else 30))
