"""Turn detection from per-chunk speech probabilities: a pure state machine, no I/O."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from hark.pipeline.completeness import Reading


class TurnEvent(enum.Enum):
    SPEECH_STARTED = "speech_started"
    SPEECH_STOPPED = "speech_stopped"
    PAUSED = "paused"
    """A short silence inside a turn (the listener reports it; the turn may still go on)."""


class Eagerness(enum.Enum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    AUTO = "auto"


UNSURE = 0.2
"""How far below its threshold the model is still unsure rather than saying "not done"."""
WORDS_WAIT_MS = 1000.0
"""The longest an ask waits for the words of its pause (see SemanticPolicy.wait_ms)."""
WORDS_MIN_LOGPROB = -0.8
"""A pause's transcript whose mean log-probability per token is below this is doubted
(``Reading.DOUBTED``): where espeak-ng turns were cut off, 8 of tiny.en's 15 mishearings scored
-0.81 to -1.03; 4 of 32 complete short turns did too (docs/turn-taking.md)."""
WORDS_DOUBT_MS = 1000.0
"""Doubted words hold a semantic turn only through this much silence: from the first ask at or
after it the model decides alone, as without a transcript. Longer than the inner pauses of the
corpus's (a) turns (300-900 ms), so a pause the words doubt still waits for the speaker; short
of ``medium``'s and ``low``'s longest silences (2 s, 3 s), which the short turns tiny.en doubts
waited for (docs/turn-taking.md, "Words the recogniser doubts")."""


@dataclass(frozen=True, slots=True)
class SemanticPolicy:
    """When a semantic turn asks whether the speaker is done, how sure the turn model must be,
    and the longest silence it waits for when the answer keeps being "not done".

    Each ask hears the turn model and reads the words of the pause's speculative transcript
    (completeness.py): words that read unfinished, or that the recogniser doubts (until
    ``TurnConfig.words_doubt_ms``, see ``weigh``), keep the turn open whatever the model says;
    otherwise the model decides, and a model that is unsure (within ``UNSURE`` of its
    threshold) ends the turn when the words read complete. ``early_ms``
    is an ask before the others that ends the turn only when both agree: the words read complete
    and the model is sure."""

    decide_ms: tuple[float, ...]
    threshold: float
    max_silence_ms: float
    early_ms: float | None = None

    def ask_at(self, silence_chunks: int, chunk_ms: float) -> float | None:
        """The ask (its ms of silence) due at this chunk of silence, if any."""
        asks = (self.early_ms, *self.decide_ms) if self.early_ms is not None else self.decide_ms
        return next((ms for ms in asks if silence_chunks == max(1, round(ms / chunk_ms))), None)

    def decide_at(self, silence_chunks: int, chunk_ms: float) -> bool:
        return self.ask_at(silence_chunks, chunk_ms) is not None

    def wait_ms(self, ask_ms: float) -> float:
        """How long the ask at ``ask_ms`` may wait for the pause's transcript: at most until the
        longest silence ends the turn anyway, and at most ``WORDS_WAIT_MS``. A turn that ends at
        this pause needs that transcript before anything can answer it, so the wait costs the
        answer nothing; the bound keeps a shed or stalled transcription from holding it up."""
        return max(0.0, min(self.max_silence_ms - ask_ms, WORDS_WAIT_MS))

    @staticmethod
    def weigh(ask_ms: float, words: Reading, doubt_ms: float | None) -> Reading:
        """The words as the ask at ``ask_ms`` weighs them: doubted words hold the turn only at
        asks before ``doubt_ms`` of silence (None: at every ask); from then on they are not
        read at all (``UNKNOWN``), and the model decides alone."""
        if words is Reading.DOUBTED and doubt_ms is not None and ask_ms >= doubt_ms:
            return Reading.UNKNOWN
        return words

    def may_end(self, ask_ms: float, probability: float) -> bool:
        """Whether some words could still end the turn at this ask, given the model's answer."""
        return self.ends(ask_ms, probability, Reading.COMPLETE)

    def ends(self, ask_ms: float, probability: float, words: Reading) -> bool:
        """Whether the turn ends at this ask; ``words`` is ``UNKNOWN`` without a transcript."""
        if words.holds:
            return False
        if ask_ms == self.early_ms:
            return words is Reading.COMPLETE and probability >= self.threshold
        if probability >= self.threshold:
            return True
        return words is Reading.COMPLETE and probability >= self.threshold - UNSURE


# medium (and auto) first asks when server_vad would end the turn (300 ms), so it never ends a
# turn sooner than server_vad does, only later when the words or the model say it is unfinished:
# on the espeak-ng corpus the model says "done" at most inner pauses (docs/turn-taking.md), and
# the Agents SDKs and LiveKit ask for semantic_vad by default. high may end a turn sooner: at
# 128 ms when the words read complete and the model agrees.
SEMANTIC_POLICIES = {
    Eagerness.HIGH: SemanticPolicy(
        decide_ms=(160, 320, 640), threshold=0.5, max_silence_ms=1000, early_ms=128
    ),
    Eagerness.MEDIUM: SemanticPolicy(decide_ms=(300, 600, 1200), threshold=0.5, max_silence_ms=2000),
    Eagerness.LOW: SemanticPolicy(decide_ms=(500, 1000, 2000), threshold=0.7, max_silence_ms=3000),
}
SEMANTIC_POLICIES[Eagerness.AUTO] = SEMANTIC_POLICIES[Eagerness.MEDIUM]


@dataclass(frozen=True, slots=True)
class TurnConfig:
    chunk_ms: float = 32.0
    threshold: float = 0.5
    neg_threshold: float | None = None
    start_ms: float = 96.0
    end_silence_ms: float = 300.0
    max_turn_ms: float = 30_000.0
    eagerness: Eagerness | None = None
    """Semantic end of turn (``semantic_vad``): a turn model decides at short pauses; ``None``
    ends turns on ``end_silence_ms`` of silence alone (``server_vad``)."""
    coded_tail_ms: float = 0.0
    """How much later than in the raw audio the VAD hears speech end in this input, because of
    the caller's codec (a WebRTC call's Opus: about one chunk, ``webrtc.codec_tail_ms``). That
    much of every silence counts as heard already, so the turn ends (and the semantic asks come)
    after the same real silence as for uncoded audio. Whole chunks only."""
    words_min_logprob: float | None = WORDS_MIN_LOGPROB
    """Semantic turns: a pause's transcript the recogniser doubts more than this (mean
    log-probability per token) does not end the turn (``completeness.judge``); None: never doubted."""
    words_doubt_ms: float | None = WORDS_DOUBT_MS
    """... until this much silence: from the first ask at or after it the model decides alone
    (``SemanticPolicy.weigh``); None: doubted words hold the turn to the longest silence."""

    @property
    def off_threshold(self) -> float:
        if self.neg_threshold is not None:
            return self.neg_threshold
        return max(0.01, self.threshold - 0.15)

    @property
    def tail_chunks(self) -> int:
        """``coded_tail_ms`` in whole chunks."""
        return max(0, round(self.coded_tail_ms / self.chunk_ms))


@dataclass(frozen=True, slots=True)
class Detection:
    event: TurnEvent
    chunk_index: int
    """Index of the chunk where speech began (started) or where the trailing silence began (stopped)."""


class TurnDetector:
    """Speech starts after ``start_ms`` of consecutive speech chunks and stops after
    ``end_silence_ms`` of silence (hysteresis between threshold and off_threshold)."""

    def __init__(self, config: TurnConfig, *, start_index: int = 0) -> None:
        self.config = config
        self._start_chunks = max(1, round(config.start_ms / config.chunk_ms))
        end_ms = config.end_silence_ms
        if config.eagerness is not None:
            end_ms = SEMANTIC_POLICIES[config.eagerness].max_silence_ms
        self._end_chunks = max(1, round(end_ms / config.chunk_ms) - config.tail_chunks)
        self._max_chunks = max(1, round(config.max_turn_ms / config.chunk_ms))
        self._index = start_index - 1
        self.reset()

    @property
    def silence_run(self) -> tuple[int, int]:
        """(chunks of silence so far in this turn, index where that silence began)."""
        return (self._silence, self._silence_start) if self.in_speech else (0, 0)

    def reset(self) -> None:
        """Forget any turn in progress; chunk indexes keep counting."""
        self.in_speech = False
        self._run = 0
        self._run_start = 0
        self._silence = 0
        self._silence_start = 0
        self._turn_start = 0

    def push(self, probability: float) -> Detection | None:
        self._index += 1
        if not self.in_speech:
            if probability >= self.config.threshold:
                if self._run == 0:
                    self._run_start = self._index
                self._run += 1
                if self._run >= self._start_chunks:
                    self.in_speech = True
                    self._silence = 0
                    self._turn_start = self._run_start
                    return Detection(TurnEvent.SPEECH_STARTED, self._run_start)
            else:
                self._run = 0
            return None
        if probability >= self.config.threshold:
            self._silence = 0
        elif probability < self.config.off_threshold or self._silence > 0:
            # Between the two thresholds a silence already begun keeps counting (hysteresis).
            if self._silence == 0:
                self._silence_start = self._index
            self._silence += 1
            if self._silence >= self._end_chunks:
                return self._stop(self._silence_start)
        if self._index - self._turn_start + 1 >= self._max_chunks:
            return self._stop(self._index + 1)
        return None

    def end_now(self) -> Detection | None:
        """End the turn on the silence it is in (a turn model said the speaker is done)."""
        if not self.in_speech or self._silence == 0:
            return None
        return self._stop(self._silence_start)

    def _stop(self, at: int) -> Detection:
        self.in_speech = False
        self._run = 0
        self._silence = 0
        return Detection(TurnEvent.SPEECH_STOPPED, at)
