"""The text judge of semantic end of turn: does a transcript read as clearly unfinished?"""

from __future__ import annotations

import pytest

from hark.engines.base import Transcript
from hark.pipeline.completeness import Reading, judge, read

UNFINISHED = [
    # a copula after a noun
    "My phone number is",
    "My phone number is.",
    "Let me see, I think the answer is.",
    "The problem was",
    # articles, possessives, prepositions, conjunctions
    "I'd like to order the.",
    "Can you send it to my.",
    "Send it to john at.",
    "I need it by the end of.",
    "Put it next to",
    "I want eggs and.",
    "We could go tomorrow but.",
    "I'll come if",
    # contracted copulas and auxiliaries
    "I think it's.",
    "And then I'll",
    # fillers
    "I was thinking um.",
    "I was thinking, uh",
    "Let me see.",
    "Let me think.",
    "Well, I think.",
    # trailing comma, dash or ellipsis
    "I need eggs,",
    "I need eggs, milk,",
    "My phone number is...",
    "My phone is very...",
    "The code is 4-7\u2026",
    "It is -",
    "Well —",
    "The options are:",
    # digits being read out after a cue, fewer than the kind has
    "My phone number is 555.",
    "My phone number is 555-234.",
    "My number is 555 234.",
    "My phone number is five five five.",
    "My number's 555.",
    "The code is 47.",
    "The PIN is 12.",
    "My zip code is 9021.",
    "My phone number is (555)",
    # what the STT wrote around it does not matter
    '"My phone number is"',
    "My phone number is [BLANK_AUDIO]",
    "  MY PHONE NUMBER IS.  ",
    "I think it\u2019s",
]

COMPLETE = [
    "Yes.",
    "No.",
    "Paris.",
    "Okay, thanks.",
    "Tell me a joke.",
    "Turn on the lights.",
    "Turn the lights on.",
    "Come in.",
    "Look it up!",
    "Sure, go ahead.",
    # a question mark ends it, whatever word is last
    "What are you looking at?",
    "Who is it for?",
    "Where are you from?",
    "Is it?",
    "You know?",
    # a copula may end a sentence after a pronoun or "here"/"there"
    "That's what it is.",
    "Here we are.",
    "Yes it is.",
    "I know who you are.",
    "There it is.",
    # numbers long enough for their kind, or read out without a cue
    "My phone number is 555 234 9876.",
    "My phone number is 555-234-9876.",
    "The code is 4729.",
    "The code is four seven two nine.",
    "The answer is 42.",
    "I think the answer is forty two.",
    "The code is forty two.",
    "Call me at 555.",
    "I'll have 2.",
    # words that are particles or pronouns, not open prepositions
    "I like that.",
    "It's his.",
    "I saw her.",
    "I think so.",
    "I like it, though.",
    "Send it to John.",
    "Send it to john at example dot com.",
]

UNKNOWN = [
    # Whisper's ellipsis (it heard the voice trail off) keeps words from reading complete
    "I was thinking...",
    "I was thinking…",
    "No...",
    "",
    "   ",
    "[BLANK_AUDIO]",
    "(laughs)",
    "...",
    "I was thinking",
    "Paris",
]


@pytest.mark.parametrize("text", UNFINISHED)
def test_unfinished(text: str) -> None:
    assert read(text) is Reading.UNFINISHED


@pytest.mark.parametrize("text", COMPLETE)
def test_complete(text: str) -> None:
    assert read(text) is Reading.COMPLETE


@pytest.mark.parametrize("text", UNKNOWN)
def test_nothing_to_judge(text: str) -> None:
    assert read(text) is Reading.UNKNOWN


def test_only_the_end_counts() -> None:
    assert read("My phone number is 555 234 9876. And the code is") is Reading.UNFINISHED
    assert read("The code is, let me see, 4729.") is Reading.COMPLETE


def test_words_the_recogniser_doubts_are_not_read() -> None:
    # tiny.en's "and with the gun." for "Send it to john" scored -0.89
    assert judge(Transcript("and with the gun.", logprob=-0.89), -0.8) is Reading.DOUBTED
    assert judge(Transcript("My phone number is", logprob=-0.89), -0.8) is Reading.DOUBTED
    assert judge(Transcript("Tell me a joke.", logprob=-0.34), -0.8) is Reading.COMPLETE
    assert judge(Transcript("My phone number is", logprob=-0.3), -0.8) is Reading.UNFINISHED
    assert judge(Transcript("Paris", logprob=-0.8), -0.8) is Reading.UNKNOWN  # at the bar: not below


def test_without_a_bar_or_a_score_nothing_is_doubted() -> None:
    assert judge(Transcript("and with the gun.", logprob=-3.0), None) is Reading.COMPLETE
    assert judge(Transcript("and with the gun."), -0.8) is Reading.COMPLETE  # the engine does not say


def test_doubted_and_unfinished_words_hold_the_turn() -> None:
    assert [r for r in Reading if r.holds] == [Reading.UNFINISHED, Reading.DOUBTED]
