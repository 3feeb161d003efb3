"""One spoken reply: text stream → sentences → TTS → paced audio chunks.

Three stages joined by small queues so the first sentence is spoken while the LLM is still
writing the rest, and the next sentence is synthesised while the current one plays. Audio is
sent at most ``lead_ms`` ahead of the listener's playhead, so a barge-in has little to take back
and ``heard()`` knows which words were actually heard.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from hark.audio import Chunker, PCM16Resampler, pcm16_duration_ms
from hark.engines.base import TTS
from hark.errors import EngineError
from hark.pipeline.playback import PlaybackClock, Segment, heard_text
from hark.pipeline.sentences import SentenceSplitter

_END = None
SENTENCE_ATTEMPTS = 2


@dataclass(slots=True)
class ReplyTimings:
    started: float = field(default_factory=time.monotonic)
    first_text: float | None = None
    first_sentence: float | None = None
    first_audio_ready: float | None = None
    first_audio_sent: float | None = None


class Responder:
    def __init__(
        self,
        tts: TTS,
        *,
        output_rate: int,
        chunk_ms: int,
        lead_ms: int,
        on_text: Callable[[str], None],
        on_audio: Callable[[bytes], None],
        hold: asyncio.Event | None = None,
    ) -> None:
        """``hold``: nothing is sent (text or audio) until it is set; the reply is prepared
        meanwhile (a speculative reply waiting for the turn to end)."""
        self._tts = tts
        self._hold = hold
        self._output_rate = output_rate
        self._chunk_bytes = max(2, output_rate * chunk_ms // 1000 * 2)
        self._lead_ms = lead_ms
        self._on_text = on_text
        self._on_audio = on_audio
        self.clock = PlaybackClock()
        self.segments: list[Segment] = []
        self.spoken_text: list[str] = []
        self.timings = ReplyTimings()

    def heard(self, played_ms: float | None = None) -> str:
        position = self.clock.played_ms(time.monotonic()) if played_ms is None else played_ms
        return heard_text(self.segments, position)

    def full_text(self) -> str:
        return " ".join(self.spoken_text)

    async def run(self, text: AsyncIterator[str]) -> None:
        """Speak ``text`` to the end. Cancel the task running this to stop at once."""
        sentences: asyncio.Queue[str | None] = asyncio.Queue()
        audio: asyncio.Queue[tuple[str, bytes] | None] = asyncio.Queue(maxsize=2)
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._split(text, sentences))
                group.create_task(self._synthesize(sentences, audio))
                group.create_task(self._send(audio))
        except BaseExceptionGroup as group:
            # One stage failed and the others were stopped: the caller sees that one error.
            raise group.exceptions[0] from None

    async def _split(self, text: AsyncIterator[str], out: asyncio.Queue[str | None]) -> None:
        # End markers are sent only on success: on failure or cancellation the task group stops
        # every stage, and waiting to hand a marker to a stopped stage would never end.
        splitter = SentenceSplitter()
        async for delta in text:
            if self.timings.first_text is None:
                self.timings.first_text = time.monotonic()
            for sentence in splitter.push(delta):
                self._sentence_ready(sentence, out)
        for sentence in splitter.flush():
            self._sentence_ready(sentence, out)
        out.put_nowait(_END)

    def _sentence_ready(self, sentence: str, out: asyncio.Queue[str | None]) -> None:
        if self.timings.first_sentence is None:
            self.timings.first_sentence = time.monotonic()
        out.put_nowait(sentence)

    async def _synthesize(
        self, sentences: asyncio.Queue[str | None], out: asyncio.Queue[tuple[str, bytes] | None]
    ) -> None:
        while (sentence := await sentences.get()) is not _END:
            pcm = await self._sentence_audio(sentence)
            resampler = PCM16Resampler(self._tts.sample_rate, self._output_rate)
            pcm = resampler.process(pcm) + resampler.process(b"", last=True)
            if self.timings.first_audio_ready is None and pcm:
                self.timings.first_audio_ready = time.monotonic()
            await out.put((sentence, pcm))
        await out.put(_END)

    async def _sentence_audio(self, sentence: str) -> bytes:
        """The whole sentence's audio. It is gathered before any of it is sent, so a TTS failure
        part-way through costs nothing the listener heard, and the sentence is tried once more
        (the chain moves on if that provider keeps failing)."""
        for attempt in range(SENTENCE_ATTEMPTS):
            try:
                return b"".join([piece async for piece in self._tts.synthesize(sentence)])
            except EngineError:
                if attempt + 1 == SENTENCE_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")

    async def _send(self, audio: asyncio.Queue[tuple[str, bytes] | None]) -> None:
        while (item := await audio.get()) is not _END:
            if self._hold is not None:
                await self._hold.wait()
            sentence, pcm = item
            start_ms = self.clock.sent_ms
            duration_ms = pcm16_duration_ms(len(pcm), self._output_rate)
            self.segments.append(Segment(start_ms, start_ms + duration_ms, sentence))
            self.spoken_text.append(sentence)
            self._on_text(sentence if not self.spoken_text[:-1] else " " + sentence)
            chunker = Chunker(self._chunk_bytes)
            pieces = chunker.push(pcm)
            if rest := chunker.flush():
                pieces.append(rest)
            for piece in pieces:
                delay = self.clock.wait_s(time.monotonic(), self._lead_ms)
                if delay > 0:
                    await asyncio.sleep(delay)
                now = time.monotonic()
                if self.timings.first_audio_sent is None:
                    self.timings.first_audio_sent = now
                self.clock.on_send(now, pcm16_duration_ms(len(piece), self._output_rate))
                self._on_audio(piece)
