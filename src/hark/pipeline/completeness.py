"""Do the words of a turn so far read as finished? A pure judge of a transcript's last words.

Semantic end of turn asks it at a pause, with the speculative transcript of the speech before
that pause, beside the turn model (which hears only the sound). It says ``UNFINISHED`` only where
English grammar is clear: the transcript ends on a word that cannot end a sentence (an article,
a preposition, a conjunction, a possessive, a copula after a noun), on a filler ("um", "let me
see"), on a comma or dash, or in the middle of a number being read out (fewer digits than the
shortest number of its kind). ``COMPLETE`` is any other transcript that ends on ``.``, ``?`` or
``!``; a question mark ends a sentence whatever word comes before it ("What are you looking
at?"). ``UNKNOWN``: nothing to judge (no words, no closing punctuation, or an ellipsis after
words that do not say unfinished). ``DOUBTED`` (``judge``): words the recogniser itself doubts,
which are not read at all.
"""

from __future__ import annotations

import enum
import re

from hark.engines.base import Transcript


class Reading(enum.Enum):
    UNFINISHED = "unfinished"
    COMPLETE = "complete"
    UNKNOWN = "unknown"
    DOUBTED = "doubted"
    """The recogniser doubts its words (``judge``): they may not be what was said."""

    @property
    def holds(self) -> bool:
        """Whether the words keep the turn open whatever the turn model says."""
        return self in (Reading.UNFINISHED, Reading.DOUBTED)


def judge(transcript: Transcript, min_logprob: float | None) -> Reading:
    """How ``transcript`` reads (``read``), unless its recogniser doubts it: a mean
    log-probability per token below ``min_logprob`` is ``DOUBTED`` (``None``: never doubted)."""
    if min_logprob is not None and transcript.logprob is not None and transcript.logprob < min_logprob:
        return Reading.DOUBTED
    return read(transcript.text)


def _words(*groups: str) -> frozenset[str]:
    return frozenset(word for group in groups for word in group.split())


# A sentence can end on a particle ("turn it on", "come in", "look it up"), so those are left
# out; what is kept cannot end an English sentence unless a question mark says it is a question.
_NEVER_LAST = _words(
    # articles and possessive determiners ("his", "her" can end one: "it is his")
    "a an the my your our their its whose every",
    # prepositions that are not also particles
    "of to at from with for into onto than via per toward towards upon among amongst",
    "between including regarding",
    # conjunctions that join to something still to come ("so", "though", "then" can end one)
    "and or but nor because if unless whereas although",
    # contracted copulas and auxiliaries: "it's", "I'm", "I'll" cannot end a sentence
    "i'm you're we're they're it's that's there's here's what's he's she's who's where's",
    "how's i'll you'll we'll they'll i've you've we've they've",
    # an intensifier needs what it intensifies ("it is very")
    "very",
)
_COPULAS = _words("is are was were am")
_COPULA_MAY_END = _words("i you he she it we they there here this that these those what who where how yes no")
"""A copula after these can end a sentence ("that's what it is", "here we are", "yes it is");
after a noun it cannot ("my phone number is", "the answer is")."""
_FILLERS = (
    ("um",),
    ("umm",),
    ("uh",),
    ("uhh",),
    ("er",),
    ("erm",),
    ("hmm",),
    ("let", "me", "see"),
    ("let", "me", "think"),
    ("i", "think"),
    ("i", "mean"),
)
_CONTINUING = (",", ";", ":", "-", "\u2013", "\u2014")
_TRAILING_OFF = ("...", "\u2026")
"""Whisper's ellipsis: it heard the voice trail off. Not a word of grammar: tiny.en wrote "No..."
for a complete "No." in the corpus, so it only keeps the words from reading complete."""
_DIGIT_WORDS = _words("zero oh one two three four five six seven eight nine")
_SHORTEST_NUMBER = {
    # a phone number without its area code (7 digits) is the shortest a listener writes down
    **dict.fromkeys(_words("number phone mobile cell telephone fax"), 7),
    # PINs and one-time codes have at least 4 digits
    **dict.fromkeys(_words("code pin passcode"), 4),
    "zip": 5,
    "area": 3,
}
_TAGS = re.compile(r"\[[^\]]*\]|\([^)0-9]*\)|\*[^*]*\*")
"""Sound tags ("[BLANK_AUDIO]", "(laughs)"); "(555)" is an area code and stays."""
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def read(transcript: str) -> Reading:
    """How the words of ``transcript`` (the turn so far, as an STT wrote it) end."""
    text = _TAGS.sub(" ", transcript.replace("\u2019", "'")).strip().lower()
    text = text.rstrip("\"' ")
    words = _WORD.findall(text)
    if not words:
        return Reading.UNKNOWN
    if text.endswith(_CONTINUING):
        return Reading.UNFINISHED
    if text.endswith("?"):
        return Reading.COMPLETE
    if _unfinished(words):
        return Reading.UNFINISHED
    if text.endswith(_TRAILING_OFF):
        return Reading.UNKNOWN
    return Reading.COMPLETE if text.endswith((".", "!")) else Reading.UNKNOWN


def _unfinished(words: list[str]) -> bool:
    last = words[-1]
    if last in _NEVER_LAST:
        return True
    if last in _COPULAS:
        return len(words) > 1 and words[-2] not in _COPULA_MAY_END
    if any(tuple(words[-len(filler) :]) == filler for filler in _FILLERS):
        return True
    return _number_unfinished(words)


def _number_unfinished(words: list[str]) -> bool:
    """Digits being read out right after a cue ("my number is 555 234"), fewer than its kind has."""
    digits, start = 0, len(words)
    while start > 0 and (count := _digits(words[start - 1])) is not None:
        digits, start = digits + count, start - 1
    cue = start - 1
    if cue > 0 and words[cue] in _COPULAS:  # "number is 555", else "number 555"
        cue -= 1
    if digits == 0 or cue < 0:
        return False
    # "my number's 555"; a known word before the cue names the kind: "zip code", "area code"
    kinds = [_SHORTEST_NUMBER.get(w.removesuffix("'s")) for w in words[max(0, cue - 1) : cue + 1]]
    shortest = next((k for k in kinds if k is not None), None) if kinds[-1] is not None else None
    return shortest is not None and digits < shortest


def _digits(word: str) -> int | None:
    """How many digits ``word`` reads out ("555" 3, "five" 1); ``None`` if it is not digits."""
    if word.isdigit():
        return len(word)
    return 1 if word in _DIGIT_WORDS else None
