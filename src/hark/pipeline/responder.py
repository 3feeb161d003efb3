"""One spoken reply: text stream → sentences → TTS → paced audio chunks.

Three stages joined by small queues so the first sentence is spoken while the LLM is still
writing the rest, and the next sentence is synthesised while the current one plays. A sentence's
audio is passed on piece by piece as the TTS makes it, so its first words play before the rest
is synthesised. Audio is sent at most ``lead_ms`` ahead of the listener's playhead, so a
barge-in has little to take back and ``heard()`` knows which words were actually heard.

The hand-offs are kept off the way to the first audio: the splitting stage runs in the caller's
task (the LLM is asked at once), and the synthesis stage sends what may go now itself when the
sending stage is idle with nothing queued (the first chunks of a reply, and every sentence that
comes after the previous one has played), instead of waking the sending stage for it.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Literal

from hark.audio import Chunker, PCM16Resampler, pcm16_duration_ms
from hark.engines.base import TTS
from hark.errors import EngineError
from hark.pipeline.playback import PlaybackClock, Segment, heard_text
from hark.pipeline.sentences import SentenceSplitter

log = logging.getLogger("hark.responder")

_END = None
SENTENCE_ATTEMPTS = 2
AUDIO_QUEUE_PIECES = 16
"""Pieces of audio the synthesis stage may run ahead of the sending stage."""

_Piece = tuple[Literal["start"], str] | tuple[Literal["chunks"], list[bytes]]
"""("start", sentence), then ("chunks", [pcm, ...]) of ``chunk_ms`` each (a sentence's last one
may be shorter)."""


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
        first_clause_words: int = 0,
    ) -> None:
        """``hold``: nothing is sent (text or audio) until it is set; the reply is prepared
        meanwhile (a speculative reply waiting for the turn to end). ``first_clause_words``: the
        first chunk spoken may be a clause of at least that many words (``SentenceSplitter``)."""
        self._first_clause_words = first_clause_words
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
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._sent: collections.deque[tuple[float, bytes]] = collections.deque()
        """(position, piece) of the audio sent lately: what a rewinding resume sends again."""
        self._replay: list[bytes] = []
        self._generation = 0
        """Counts pauses: a piece whose wait for its turn spanned one is not sent then."""
        self._chunker = Chunker(self._chunk_bytes)
        self._sender_idle = False
        """The sending stage waits for work with none queued: the synthesis stage may send itself."""

    def pause(self, *, rewind: bool) -> float:
        """Send nothing more until ``resume``; returns the position (ms of reply audio) the reply
        will resume from: the listener's playhead (``rewind``: the client drops what it had
        buffered, so what it lost is sent again) or the end of what was sent."""
        self._generation += 1
        self._flowing.clear()
        at = self.clock.played_ms(time.monotonic()) if rewind else self.clock.sent_ms
        lost: list[bytes] = []
        for start, piece in self._sent:
            end = start + pcm16_duration_ms(len(piece), self._output_rate)
            if end > at:
                lost.append(piece[max(0, int((at - start) * self._output_rate / 1000)) * 2 :])
        self._replay = lost + self._replay
        self.clock.sent_ms = min(self.clock.sent_ms, at)
        self._sent.clear()
        return at

    def resume(self) -> float:
        """Go on from where ``pause`` stopped; returns that position."""
        self._flowing.set()
        return self.clock.sent_ms

    def heard(self, played_ms: float | None = None) -> str:
        position = self.clock.played_ms(time.monotonic()) if played_ms is None else played_ms
        return heard_text(self.segments, position)

    def full_text(self) -> str:
        return " ".join(self.spoken_text)

    async def run(self, text: AsyncIterator[str]) -> None:
        """Speak ``text`` to the end. Cancel the task running this to stop at once."""
        sentences: asyncio.Queue[str | None] = asyncio.Queue()
        audio: asyncio.Queue[_Piece | None] = asyncio.Queue(maxsize=AUDIO_QUEUE_PIECES)
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._synthesize(sentences, audio))
                group.create_task(self._send(audio))
                await self._split(text, sentences)  # here: the LLM is asked without a task switch
        except BaseExceptionGroup as group:
            # One stage failed and the others were stopped: the caller sees that one error.
            raise group.exceptions[0] from None

    async def _split(self, text: AsyncIterator[str], out: asyncio.Queue[str | None]) -> None:
        # End markers are sent only on success: on failure or cancellation the task group stops
        # every stage, and waiting to hand a marker to a stopped stage would never end.
        splitter = SentenceSplitter(first_clause_words=self._first_clause_words)
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
        self, sentences: asyncio.Queue[str | None], out: asyncio.Queue[_Piece | None]
    ) -> None:
        while (sentence := await sentences.get()) is not _END:
            await self._sentence_audio(sentence, out)
        await out.put(_END)

    async def _sentence_audio(self, sentence: str, out: asyncio.Queue[_Piece | None]) -> None:
        """Pass one sentence's audio on as it comes. When the TTS fails part-way, the sentence is
        synthesised once more (the chain moves on if that provider keeps failing) and the length
        already passed on is skipped in the new audio: the listener hears neither a repeat nor a
        gap (to within the new take's timing)."""
        passed = 0
        """Bytes of this sentence already handed to the sending stage."""
        started = False
        for attempt in range(SENTENCE_ATTEMPTS):
            resampler = PCM16Resampler(self._tts.sample_rate, self._output_rate)
            skip = passed
            try:
                async for piece in self._tts.synthesize(sentence):
                    pcm = resampler.process(piece)
                    if skip:
                        dropped = min(skip, len(pcm))
                        pcm, skip = pcm[dropped:], skip - dropped
                    if not pcm:
                        continue
                    if not started:
                        started = True
                        if self.timings.first_audio_ready is None:
                            self.timings.first_audio_ready = time.monotonic()
                        await self._pass_on(("start", sentence), out)
                    await self._pass_on(("chunks", self._chunker.push(pcm)), out)
                    passed += len(pcm)
                tail = resampler.process(b"", last=True)
                tail = tail[min(skip, len(tail)) :]
            except EngineError:
                if attempt + 1 == SENTENCE_ATTEMPTS:
                    raise
                if passed:
                    log.warning("speech failed part-way through a sentence; synthesising the rest again")
                continue
            if not started:
                await self._pass_on(("start", sentence), out)  # its words are still the reply's text
            chunks = self._chunker.push(tail) if tail else []
            if rest := self._chunker.flush():  # the sentence's end goes out as a shorter chunk
                chunks.append(rest)
            await self._pass_on(("chunks", chunks), out)
            return

    async def _pass_on(self, piece: _Piece, out: asyncio.Queue[_Piece | None]) -> None:
        """Hand ``piece`` to the sending stage; or, when that stage is idle with nothing queued
        and the reply is not held, send now what may go now and queue only the rest."""
        if piece[0] == "chunks" and not piece[1]:
            return
        flowing = self._flowing.is_set() and not self._replay
        if self._sender_idle and flowing and out.empty() and (self._hold is None or self._hold.is_set()):
            first = self.timings.first_audio_sent is None
            rest = self._deliver(piece)
            if rest is not None:
                out.put_nowait(rest)  # the queue was empty: it has room, and the order is kept
            if first and self.timings.first_audio_sent is not None:
                # The reply's first audio is in the outbox: one loop pass, so that the writer
                # (woken by it) puts it on the socket before this stage encodes and queues the
                # rest of the sentence and starts the next one (~0.2-0.4 ms: docs/benchmarks.md).
                await asyncio.sleep(0)
            return
        await out.put(piece)

    async def _send(self, audio: asyncio.Queue[_Piece | None]) -> None:
        self._sender_idle = True
        while (item := await audio.get()) is not _END:
            self._sender_idle = False
            if self._hold is not None:
                await self._hold.wait()
            await self._replayed()
            while (item := self._deliver(item)) is not None:
                if not self._flowing.is_set() or self._replay:
                    await self._replayed()  # paused: wait, then send again what the listener lost
                else:
                    await asyncio.sleep(self.clock.wait_s(time.monotonic(), self._lead_ms))
            self._sender_idle = True
        await self._replayed()

    def _deliver(self, piece: _Piece) -> _Piece | None:
        """Send ``piece``, or as much of it as may go now: what must wait for the playhead
        (``lead_ms``) or for a paused reply to resume comes back."""
        if piece[0] == "start":
            sentence = piece[1]
            self.segments.append(Segment(self.clock.sent_ms, self.clock.sent_ms, sentence))
            self.spoken_text.append(sentence)
            self._on_text(sentence if not self.spoken_text[:-1] else " " + sentence)
            return None
        chunks = piece[1]
        for index, chunk in enumerate(chunks):
            now = time.monotonic()
            if not self._flowing.is_set() or self._replay or self.clock.wait_s(now, self._lead_ms) > 0:
                return ("chunks", chunks[index:])
            first = self.timings.first_audio_sent is None
            self._put(chunk, now)
            current = self.segments[-1]  # its end grows as its audio goes out
            self.segments[-1] = Segment(current.start_ms, self.clock.sent_ms, current.text)
            if first and index + 1 < len(chunks):
                # The reply's first chunk goes to the socket before the rest of the lead is
                # encoded and queued behind it (~0.5 ms at a 600 ms lead: docs/benchmarks.md).
                return ("chunks", chunks[index + 1 :])
        return None

    async def _replayed(self) -> None:
        """Wait while paused; after a rewinding pause, send again what the listener lost."""
        while True:
            await self._flowing.wait()
            if not self._replay:
                return
            if await self._paced(self._replay[0]):
                self._replay.pop(0)

    async def _paced(self, piece: bytes) -> bool:
        """Send ``piece`` when the pacing allows; False (not sent) if a pause came meanwhile."""
        generation = self._generation
        delay = self.clock.wait_s(time.monotonic(), self._lead_ms)
        if delay > 0:
            await asyncio.sleep(delay)
        if generation != self._generation or not self._flowing.is_set():
            return False
        self._put(piece, time.monotonic())
        return True

    def _put(self, piece: bytes, now: float) -> None:
        """Send one chunk of reply audio, and remember it for a rewinding pause."""
        if self.timings.first_audio_sent is None:
            self.timings.first_audio_sent = now
        self._sent.append((self.clock.sent_ms, piece))
        while self._sent and self._sent[0][0] < self.clock.sent_ms - self._lead_ms - 1000:
            self._sent.popleft()
        self.clock.on_send(now, pcm16_duration_ms(len(piece), self._output_rate))
        self._on_audio(piece)


class TextReply:
    """A written reply (``output_modalities: ["text"]``): the LLM's deltas go out as they come;
    no speech is synthesised, so everything written counts as heard."""

    def __init__(self, *, on_text: Callable[[str], None]) -> None:
        self._on_text = on_text
        self.clock = PlaybackClock()
        self.timings = ReplyTimings()
        self._text: list[str] = []

    def heard(self, played_ms: float | None = None) -> str:
        return self.full_text()

    def full_text(self) -> str:
        return "".join(self._text).strip()

    async def run(self, text: AsyncIterator[str]) -> None:
        async for delta in text:
            if not delta:
                continue
            if self.timings.first_text is None:
                self.timings.first_text = time.monotonic()
            self._text.append(delta)
            self._on_text(delta)
