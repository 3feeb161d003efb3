"""The turn bench's corpus (a): pauses found in the audio, and the SSML build that makes them."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import numpy as np
import pytest

from hark.bench.audio import RATE, gaps, silence, ssml, to_pcm16
from hark.bench.turns import (
    HEARD_INTO_PAUSE_MS,
    LEAD_MS,
    PAUSED,
    Case,
    find_pauses,
    fragments_case,
    pause_probabilities,
    paused_case,
)
from hark.engines.base import Float32Array
from tests.speech import require_espeak


def tone(ms: float, amplitude: float = 0.3) -> bytes:
    t = np.arange(int(RATE * ms / 1000)) / RATE
    return to_pcm16((amplitude * np.sin(2 * np.pi * 220 * t)).astype(np.float32))


def test_gaps_are_the_silences_at_least_as_long_as_asked() -> None:
    pcm = tone(200) + silence(400) + tone(100) + silence(50) + tone(100) + silence(700) + tone(200)
    found = gaps(pcm, min_ms=300)
    assert len(found) == 2  # the 50 ms dip inside the speech is no pause
    (start1, end1), (start2, end2) = found
    assert start1 == pytest.approx(200, abs=2) and end1 == pytest.approx(600, abs=2)
    assert start2 == pytest.approx(850, abs=2) and end2 == pytest.approx(1550, abs=2)


def test_gaps_read_quiet_samples_as_silence_and_ignore_the_edges() -> None:
    pcm = silence(300) + tone(200) + tone(400, amplitude=0.01) + tone(200) + silence(900)
    assert [round(e - s) for s, e in gaps(pcm, min_ms=300)] == [400]
    assert gaps(silence(1000), min_ms=100) == []


def test_find_pauses_refuses_a_corpus_that_is_not_what_it_claims() -> None:
    pcm = tone(200) + silence(500) + tone(200) + silence(900) + tone(200)
    assert len(find_pauses(pcm, [500, 900])) == 2
    with pytest.raises(RuntimeError, match="found"):
        find_pauses(pcm, [500])  # one more silence than asked for
    with pytest.raises(RuntimeError, match="found"):
        find_pauses(pcm, [500, 300])  # the second is three times too long


def test_ssml_puts_a_break_between_parts_and_escapes_the_text() -> None:
    assert ssml(("Tom & Jerry,", "<b> two."), [300]) == (
        '<speak>Tom &amp; Jerry, <break time="300ms"/> &lt;b&gt; two.</speak>'
    )
    with pytest.raises(ValueError, match="one pause"):
        ssml(("a", "b", "c"), [300])


@pytest.mark.parametrize("voice", ["en-us", "en+f3"])
def test_an_ssml_turn_is_one_utterance_with_its_pauses_where_the_audio_is_silent(voice: str) -> None:
    require_espeak()
    parts, pauses = PAUSED[0], [500, 700, 900]
    case = paused_case(parts, pauses, voice)
    assert case.kind == "paused" and len(case.pause_ends_ms) == len(pauses)
    audio = np.frombuffer(case.pcm, dtype="<i2")
    samples = [int(ms * RATE / 1000) for ms in case.pause_ends_ms]
    for asked, resume in zip(pauses, samples, strict=True):
        before = audio[resume - int(0.6 * asked * RATE / 1000) : resume]
        assert np.abs(before).max() <= 0.02 * 32768  # silent for most of the asked pause
        assert np.abs(audio[resume : resume + RATE // 100]).max() > 0.02 * 32768  # speech resumes
    assert case.pause_ends_ms[0] > LEAD_MS
    assert case.pause_ends_ms[-1] < case.speech_end_ms
    assert not np.any(audio[int(case.speech_end_ms * RATE / 1000) + 1 :])  # the silent tail


def test_the_fragment_build_keeps_the_same_turn_as_a_worst_case() -> None:
    require_espeak()
    parts, pauses = PAUSED[4], [500, 700]
    joined = fragments_case(parts, pauses, "en-us")
    one = paused_case(parts, pauses, "en-us")
    assert joined.kind == "fragments" and len(joined.pause_ends_ms) == len(one.pause_ends_ms)
    assert joined.pcm != one.pcm


@dataclass
class HeardSeconds:
    """A turn model that answers "done" once it has heard more than ``done_after_s``."""

    done_after_s: float
    name: str = "heard-seconds"
    sample_rate: int = 16_000
    heard_s: list[float] = field(default_factory=list)

    async def end_probability(self, audio: Float32Array) -> float:
        self.heard_s.append(len(audio) / self.sample_rate)
        return 0.9 if self.heard_s[-1] > self.done_after_s else 0.1

    async def aclose(self) -> None:
        pass


def test_the_model_hears_each_inner_pause_of_both_builds_a_little_way_in() -> None:
    pcm = silence(500) + tone(500) + silence(600) + tone(500) + silence(600) + tone(500) + silence(500)
    cases = [
        Case("paused", "v", pcm, 3200, (1600, 2700), (1000, 2100)),
        Case("fragments", "v", pcm, 3200, (1600,), (1000,)),
        Case("short", "v", pcm, 3200, ()),
    ]
    model = HeardSeconds(done_after_s=2.0)
    figures = asyncio.run(pause_probabilities(cases, model))
    heard_ms = [round(s * 1000) for s in model.heard_s]
    assert heard_ms == [1000 + HEARD_INTO_PAUSE_MS, 2100 + HEARD_INTO_PAUSE_MS, 1000 + HEARD_INTO_PAUSE_MS]
    assert figures == {
        "paused": {"pauses": 2, "done": 1, "probability_p50": 0.5},
        "fragments": {"pauses": 1, "done": 0, "probability_p50": 0.1},
    }


def test_the_trace_gathers_each_pause_s_words_and_answers() -> None:
    from hark.bench.turns_timed import Heard
    from hark.bench.turns_trace import compression, pauses
    from hark.engines.base import Transcript

    heard = [
        Heard(900, None, None, 0.9),  # the model may answer before the transcript is in
        Heard(900, None, Transcript("I need bags.", logprob=-0.34)),
        Heard(900, None, None, 0.8),
        Heard(2100, None, Transcript("I need eggs, milk,", logprob=-0.2)),
    ]
    first, second = pauses(heard)
    assert (first.pause_ms, first.text, first.logprob, first.probabilities) == (
        900,
        "I need bags.",
        -0.34,
        (0.9, 0.8),
    )
    assert first.row()["reads"] == "complete"
    assert (second.pause_ms, second.probabilities, second.row()["reads"]) == (2100, (), "unfinished")
    loop, sentence = compression("fine " * 40), compression("My phone number is five five five.")
    assert loop is not None and sentence is not None and loop > 2.4 > sentence  # faster-whisper's loop bar


def test_the_trace_compares_doubt_settings_by_name() -> None:
    from hark.bench.turns_trace import Doubt
    from hark.pipeline.turns import WORDS_DOUBT_MS

    assert Doubt.parse("none") == Doubt(None, WORDS_DOUBT_MS)
    assert Doubt.parse("-0.8") == Doubt(-0.8, WORDS_DOUBT_MS)  # the doubt ends as configured
    assert Doubt.parse("-0.8@none") == Doubt(-0.8, None)  # held to the longest silence
    assert Doubt.parse("-0.8@1200") == Doubt(-0.8, 1200.0)
    assert str(Doubt.parse("-0.8@none")) == "-0.8@None"
