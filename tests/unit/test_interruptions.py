"""The interruption decision: every transition of the gate, and how speech is classified."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hark.pipeline.interruptions import (
    Action,
    IllegalMove,
    InterruptionGate,
    InterruptionPolicy,
    Phase,
    Verdict,
    looping,
    sound_key,
    sounds_like,
    words,
)

OWN = "The Eiffel Tower was finished in 1889 and is about three hundred metres tall."


@pytest.mark.parametrize(
    ("text", "verdict"),
    [
        ("", Verdict.NOISE),
        ("  ", Verdict.NOISE),
        ("[coughing]", Verdict.NOISE),
        ("(laughs)", Verdict.NOISE),
        ("*cough*", Verdict.NOISE),
        (" you", Verdict.NOISE),
        ("Thank you.", Verdict.NOISE),
        ("Mhm.", Verdict.BACKCHANNEL),
        ("M. M. M. M. M.", Verdict.BACKCHANNEL),  # tiny.en on "Mm hmm." in one full run
        ("Mm-hmm.", Verdict.BACKCHANNEL),
        ("Uh-huh.", Verdict.BACKCHANNEL),
        ("M-H-M", Verdict.BACKCHANNEL),
        ("M-A-M.", Verdict.BACKCHANNEL),  # tiny.en on espeak-ng's "Mhm." in the corpus
        ("M.A.M.", Verdict.BACKCHANNEL),
        ("A-B-C.", Verdict.WORDS),  # a spelling, but not of a hum
        ("M-A-P, please", Verdict.WORDS),
        ("MMHMM", Verdict.BACKCHANNEL),
        ("hmmm, ahh", Verdict.BACKCHANNEL),
        ("Hahaha!", Verdict.BACKCHANNEL),
        ("Ha, ha, ha...", Verdict.BACKCHANNEL),
        ("Hm, he", Verdict.WORDS),
        ("Yeah, right.", Verdict.BACKCHANNEL),
        ("Okay.", Verdict.BACKCHANNEL),
        ("Ha ha ha.", Verdict.BACKCHANNEL),
        ("I see.", Verdict.BACKCHANNEL),
        ("Yeah yeah yeah yeah yeah", Verdict.WORDS),  # more than max_words
        ("Stop, tell me about Rome.", Verdict.WORDS),
        ("Wait.", Verdict.WORDS),
        ("No.", Verdict.WORDS),
        ("the eiffel tower was finished", Verdict.SELF),
        ("Eiffel tower was finish in 1889", Verdict.SELF),  # a misheard word still counts
        ("Tell me about the tower instead", Verdict.WORDS),  # some own words, mostly new ones
    ],
)
def test_classify(text: str, verdict: Verdict) -> None:
    assert InterruptionPolicy().classify(text, OWN) is verdict


def test_words_drop_tags_punctuation_and_split_hyphens() -> None:
    assert words("Uh-huh, [laughs] RIGHT!") == ["uh", "huh", "right"]


def test_self_speech_guard_can_be_off_and_phrases_replaced() -> None:
    assert InterruptionPolicy(self_speech=False).classify("the eiffel tower", OWN) is Verdict.WORDS
    custom = InterruptionPolicy(phrases=("jawohl", "genau so"))
    assert custom.classify("Genau so!", "") is Verdict.BACKCHANNEL
    assert custom.classify("yeah", "") is Verdict.WORDS


def gate(**kw: object) -> InterruptionGate:
    return InterruptionGate(InterruptionPolicy(confirm_ms=1000, **kw))  # type: ignore[arg-type]


def test_backchannel_pauses_then_resumes_when_the_speaker_stops() -> None:
    g = gate()
    assert g.speech_started(10.0) is Action.PAUSE and g.phase is Phase.PAUSED
    assert g.deadline == pytest.approx(11.0)
    assert g.heard("Mhm", OWN, complete=False, now=0.0) is Action.NONE and g.phase is Phase.PAUSED
    assert g.heard("Mhm.", OWN, complete=True, now=0.0) is Action.RESUME and g.phase is Phase.RESUMED
    assert g.verdict is Verdict.BACKCHANNEL
    assert g.speech_ended() is Action.NONE and g.phase is Phase.SPEAKING
    assert not g.deciding


def test_real_words_interrupt_at_once_even_in_a_partial() -> None:
    g = gate()
    g.speech_started(0.0)
    assert g.heard("Stop, tell me", OWN, complete=False, now=0.0) is Action.INTERRUPT
    assert g.phase is Phase.INTERRUPTED and not g.deciding
    assert g.heard("Stop, tell me about Rome", OWN, complete=True, now=0.0) is Action.NONE
    assert g.speech_started(1.0) is Action.NONE  # a cancelled reply is not paused again


def test_a_partial_of_own_words_with_one_misheard_waits_for_the_next_transcript() -> None:
    # hark's voice leaking back, heard half wrong in a partial ("Here we" for "Here is the
    # weather"): only "we" is new, so it neither interrupts nor resumes; the whole settles it.
    own = "Here is the weather for the rest of the week."
    g = gate()
    g.speech_started(0.0)
    assert g.heard("Here we.", own, complete=False, now=0.2) is Action.NONE and g.phase is Phase.PAUSED
    assert g.heard("Here is the whander for the rest.", own, complete=True, now=0.9) is Action.RESUME
    assert g.verdict is Verdict.SELF
    # Two new words in a partial interrupt as before (one that begins with hark's words waits for
    # the pause: see below); with the guard off own words count too.
    h = gate()
    h.speech_started(0.0)
    assert h.heard("Stop now, the weather", own, complete=False, now=0.2) is Action.INTERRUPT
    k = InterruptionGate(InterruptionPolicy(self_speech=False))
    k.speech_started(0.0)
    assert k.heard("Here we.", own, complete=False, now=0.2) is Action.INTERRUPT


def test_a_short_transcript_the_recogniser_doubts_is_not_words() -> None:
    # tiny.en on espeak-ng hums: "Emmium" (-0.8 or so); on "Stop." -0.3 to -0.5.
    policy = InterruptionPolicy()
    assert policy.classify("Emmium", OWN, logprob=-0.85) is Verdict.NOISE
    assert policy.classify("And make sure it...", OWN, logprob=-0.81) is Verdict.NOISE
    assert policy.classify("Stop.", OWN, logprob=-0.32) is Verdict.WORDS
    assert policy.classify("Emmium", OWN) is Verdict.WORDS  # an engine that does not say
    long = "please stop talking about the weather now"
    assert policy.classify(long, OWN, logprob=-0.9) is Verdict.WORDS  # more than max_words
    assert InterruptionPolicy(min_logprob=None).classify("Emmium", OWN, logprob=-3.0) is Verdict.WORDS
    g = gate()
    g.speech_started(0.0)
    assert g.heard("Emmium", OWN, complete=True, now=0.5, logprob=-0.85) is Action.RESUME
    assert g.verdict is Verdict.NOISE
    # A doubtful partial decides nothing: not an interruption, and no verdict for the bound to
    # resume on (it resumed "Stop and tell me about London" once); the whole speech decides.
    h = gate()
    h.speech_started(0.0)
    assert h.heard("Stop and tell", OWN, complete=False, now=0.3, logprob=-0.9) is Action.NONE
    assert h.verdict is None and h.expire(1.0) is Action.NONE and h.phase is Phase.PAUSED
    assert h.heard("Stop and tell me about London.", OWN, complete=True, now=1.2, logprob=-0.9) is (
        Action.INTERRUPT
    )


def test_one_word_in_a_partial_waits_for_the_next_transcript() -> None:
    # The first fraction of "mm-hmm" is often heard as one word ("I'm"): it neither interrupts
    # nor resumes; the next transcript decides, and the bound does not resume on it.
    g = gate()
    g.speech_started(0.0)
    assert g.heard("I'm", OWN, complete=False, now=0.2) is Action.NONE and g.phase is Phase.PAUSED
    assert g.expire(5.0) is Action.NONE and g.phase is Phase.PAUSED
    assert g.heard("Mm-hmm.", OWN, complete=True, now=5.0) is Action.RESUME
    h = gate()
    h.speech_started(0.0)
    assert h.heard("Stop", OWN, complete=False, now=0.2) is Action.NONE
    assert h.heard("Stop.", OWN, complete=True, now=0.5) is Action.INTERRUPT  # complete: one word is enough


def test_words_after_a_resume_still_interrupt() -> None:
    g = gate()
    g.speech_started(0.0)
    g.heard("yeah", OWN, complete=True, now=0.0)
    assert g.phase is Phase.RESUMED and g.deciding
    assert g.heard("yeah but what about Rome", OWN, complete=False, now=0.0) is Action.INTERRUPT
    assert g.phase is Phase.INTERRUPTED


def test_new_speech_after_a_resume_pauses_again() -> None:
    g = gate()
    g.speech_started(0.0)
    g.heard("mhm", OWN, complete=True, now=0.0)
    assert g.speech_started(2.0) is Action.PAUSE and g.phase is Phase.PAUSED
    assert g.verdict is None and g.deadline == pytest.approx(3.0)


def test_the_bound_resumes_when_only_non_words_were_heard() -> None:
    g = gate()
    g.speech_started(5.0)
    g.heard("(laughing)", OWN, complete=False, now=0.0)
    assert g.expire(5.5) is Action.NONE  # not yet
    assert g.expire(6.0) is Action.RESUME and g.phase is Phase.RESUMED
    assert g.expire(7.0) is Action.NONE


def test_with_no_transcript_by_the_bound_the_reply_stays_paused_until_one_comes() -> None:
    g = gate()
    g.speech_started(5.0)
    assert g.expire(6.0) is Action.NONE and g.phase is Phase.PAUSED
    assert g.heard("", OWN, complete=False, now=6.5) is Action.RESUME  # past the bound: no words
    g.speech_started(7.0)
    g.expire(8.0)
    assert g.heard("wait a second", OWN, complete=False, now=8.5) is Action.INTERRUPT


def test_speech_that_ends_while_paused_resumes() -> None:
    g = gate()
    g.speech_started(0.0)
    assert g.speech_ended() is Action.RESUME and g.phase is Phase.SPEAKING


def test_self_speech_resumes() -> None:
    g = gate()
    g.speech_started(0.0)
    assert g.heard("finished in 1889 and is about", OWN, complete=True, now=0.0) is Action.RESUME
    assert g.verdict is Verdict.SELF


def test_without_backchannels_speech_interrupts_at_once() -> None:
    g = gate(backchannels=False)
    assert g.speech_started(0.0) is Action.INTERRUPT and g.phase is Phase.INTERRUPTED


def test_nothing_happens_outside_a_decision() -> None:
    g = gate()
    assert g.heard("stop", OWN, complete=True, now=0.0) is Action.NONE
    assert g.expire(100.0) is Action.NONE
    assert g.speech_ended() is Action.NONE
    assert g.phase is Phase.SPEAKING


def test_illegal_moves_are_refused() -> None:
    g = gate()
    with pytest.raises(IllegalMove, match="Cannot move from speaking to resumed"):
        g._move(Phase.RESUMED)
    g.speech_started(0.0)
    g.heard("stop now", OWN, complete=False, now=0.0)
    with pytest.raises(IllegalMove):
        g._move(Phase.PAUSED)


LEAK_OWN = "Here is the weather for the rest of the week."


@pytest.mark.parametrize(
    "partial",
    # tiny.en, greedy, on -12 dB espeak-ng leaks of LEAK_OWN (corpus (d), leak_prefixes)
    [
        "The wind is in the rear.",
        "Here is no end of the number.",
        "here is not when",
        "The whander for the mast on.",
    ],
)
def test_a_partial_of_own_words_misread_waits_for_the_next_transcript(partial: str) -> None:
    g = gate()
    g.speech_started(0.0)
    assert g.heard(partial, LEAK_OWN, complete=False, now=0.2) is Action.NONE
    assert g.phase is Phase.PAUSED
    assert InterruptionPolicy(own_sound=None).classify(partial, LEAK_OWN) is Verdict.WORDS
    k = gate(own_sound=None)  # without the sound check it interrupts, as it used to
    k.speech_started(0.0)
    assert k.heard(partial, LEAK_OWN, complete=False, now=0.2) is Action.INTERRUPT


@pytest.mark.parametrize(
    "partial",
    [
        "Stop, tell me about the road.",
        "Wait, what about the weather?",
        "No, I meant the rest",
        "Hold on, how cold?",
    ],
)
def test_a_real_interruption_with_some_of_harks_words_interrupts_in_a_partial(partial: str) -> None:
    g = gate()
    g.speech_started(0.0)
    assert g.heard(partial, LEAK_OWN, complete=False, now=0.2) is Action.INTERRUPT


def test_a_real_interruption_that_begins_with_harks_words_interrupts_at_the_pause() -> None:
    g = gate()
    g.speech_started(0.0)
    assert g.heard("The weather, stop now", LEAK_OWN, complete=False, now=0.2) is Action.NONE
    assert g.phase is Phase.PAUSED  # paused: hark is quiet meanwhile
    assert g.heard("The weather, stop now.", LEAK_OWN, complete=True, now=0.6) is Action.INTERRUPT


def test_sounds_like() -> None:
    own = words(LEAK_OWN)
    assert sound_key(words("The weather")) == "tawatar"
    assert sounds_like(words("the weather for the rest"), own) == 1.0
    assert sounds_like(words("The wind is in the rear."), own) >= 0.5
    # Sound alone does not tell them apart (a real interruption scores 0.5 too): the partial must
    # also begin with one of hark's words.
    assert sounds_like(words("Stop, tell me about Rome."), own) < sounds_like(words("The wind is"), own)
    assert sounds_like([], own) == 0.0


def test_a_partial_stuck_in_a_loop_waits_for_the_next_transcript() -> None:
    # greedy tiny.en on a -12 dB leak of "the weather for the rest of the week" after 100 ms of
    # silence: "No, no, no, ..." over and over (a repetition loop, not words anyone said)
    loop = "No, " * 100
    assert looping(loop) and not looping("No, I meant London.") and not looping("")
    g = gate()
    g.speech_started(0.0)
    assert g.heard(loop, LEAK_OWN, complete=False, now=0.2) is Action.NONE and g.phase is Phase.PAUSED
    assert g.heard("Stop, tell me about Rome.", LEAK_OWN, complete=False, now=0.4) is Action.INTERRUPT


def _sounds_like_by_the_table(heard: list[str], own: list[str]) -> float:
    """The edit-distance table written out cell by cell, as the definition reads."""
    a, b = sound_key(heard), sound_key(own)
    if not a:
        return 0.0
    previous = [0] * (len(b) + 1)
    for i, letter in enumerate(a, 1):
        row = [i] + [0] * len(b)
        for j, other in enumerate(b, 1):
            row[j] = min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (letter != other))
        previous = row
    return 1.0 - min(previous) / len(a)


_SPOKEN = st.lists(
    st.sampled_from(
        [
            "the",
            "weather",
            "for",
            "rest",
            "of",
            "week",
            "sunny",
            "mild",
            "wind",
            "rear",
            "stop",
            "tell",
            "rome",
            "café",
            "naïve",
            "x",
        ]
    ),
    max_size=25,
)


@given(_SPOKEN, _SPOKEN)
def test_sounds_like_is_the_edit_distance_table(heard: list[str], own: list[str]) -> None:
    assert sounds_like(heard, own) == pytest.approx(_sounds_like_by_the_table(heard, own))
