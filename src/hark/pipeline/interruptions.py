"""Is speech over hark's reply an interruption? A pure, clock-injected decision; no I/O.

Speech that starts while hark speaks pauses the reply at once (``PAUSE``); what the speech says
then decides, within ``confirm_ms``: real words interrupt (``INTERRUPT``); a backchannel ("mhm",
"yeah", "right"), a sound with no words (a cough, a laugh) or hark's own words leaking back into
the microphone resume the reply where it paused (``RESUME``) and are not a turn.

    SPEAKING --speech--> PAUSED --words-------------------------------> INTERRUPTED
                           \\--no words, and speech over or bound--> RESUMED --words--> INTERRUPTED
    RESUMED --speech over--> SPEAKING;  RESUMED --new speech--> PAUSED

With no transcript yet at the bound (a slow transcriber) the reply stays paused until one comes:
paused, hark is as quiet as after a barge-in, and the words still decide.
"""

from __future__ import annotations

import difflib
import enum
import re
import zlib
from dataclasses import dataclass, field

import numpy as np

DEFAULT_BACKCHANNELS = (
    "mhm",
    "mm",
    "mmm",
    "hm",
    "hmm",
    "mm hmm",
    "uh huh",
    "uh uh",
    "uh",
    "um",
    "huh",
    "ah",
    "oh",
    "ooh",
    "wow",
    "yeah",
    "yes",
    "yep",
    "yup",
    "right",
    "okay",
    "ok",
    "alright",
    "all right",
    "sure",
    "i see",
    "got it",
    "cool",
    "nice",
    "ha",
    "haha",
    "ha ha",
    "heh",
)
NOISE_TRANSCRIPTS = ("you", "thank you", "bye")
"""What Whisper-class models write for a cough, a breath or a laugh with no words in it."""

_TAGS = re.compile(r"\[[^\]]*\]|\([^)]*\)|\*[^*]*\*")
"""[coughs], (laughs), *cough*: sound tags a transcriber writes instead of words."""
_WORD = re.compile(r"[a-z0-9']+")
_HUM = re.compile(r"(?:[mh]+|u+[hm]+|a+h+|o+h+|(?:ha)+h?)")
"""One word of humming or laughing however it is spelled: "mmm", "hmmm", "mmhmm", "uhh", "umm",
"ahh", "ohh", "hahaha" (and "M-H-M": a transcriber spelling a hum as letters)."""
_SPELLED = re.compile(r"[a-z](?:[-.]\s*[a-z])+[-.]?")
"""Letters spelled out one by one ("M-A-M", "M.A.M."): how tiny.en writes a hum it cannot read
as a word. Nobody interrupts by spelling; a spelling made only of a hum's sounds is a hum."""
_HUM_LETTERS = frozenset("mhauo")


def words(text: str) -> list[str]:
    """Lower-case words of ``text`` without punctuation or sound tags; "uh-huh" is two words."""
    return _WORD.findall(_TAGS.sub(" ", text.lower()).replace("-", " "))


class Verdict(enum.Enum):
    NOISE = "noise"
    """No words (silence, a cough, a laugh): not an interruption."""
    BACKCHANNEL = "backchannel"
    SELF = "self_speech"
    """hark's own recent words, heard back through the microphone."""
    WORDS = "words"
    """Real words: an interruption."""


@dataclass(frozen=True, slots=True)
class InterruptionPolicy:
    backchannels: bool = True
    """False: any speech over the reply interrupts it at once (no pause, no confirmation)."""
    phrases: tuple[str, ...] = DEFAULT_BACKCHANNELS
    max_words: int = 4
    """A backchannel is short: more words than this are an interruption whatever they are."""
    confirm_ms: float = 1000.0
    """The longest the reply stays paused waiting for words, from the start of the speech."""
    self_speech: bool = True
    """Words that are hark's own recent words do not interrupt (its voice leaking back)."""
    self_overlap: float = 0.6
    """Share of the heard words that must be hark's own for the speech to count as self-speech."""
    min_logprob: float | None = -0.7
    """A short transcript (at most ``max_words``) whose recogniser's mean log-probability per
    token is below this is doubtful, not words: a hum misread as a word. None: never doubted."""
    own_sound: float | None = 0.5
    """An interim transcript that begins with hark's own words and sounds at least this much like
    a stretch of hark's text (``sounds_like``) waits for the next transcript even with new words:
    tiny.en misreads the rest of a quiet leak of hark's voice ("The wind is in the rear." for
    "the weather for the rest"). 0.5 is the lowest any of the 163 leak prefixes of corpus (d)
    scores against the reply's first sentence; None: never."""
    interim_words: int = 2
    """An interim transcript (the speaker still talking) interrupts only with at least this many
    real words that are not hark's own; one word waits for the next transcript. The first
    fraction of a hum is often heard as a single word ("I'm", "Hm?"), while a real interruption
    soon has two."""
    _phrases: tuple[tuple[str, ...], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        parsed = {tuple(words(p)) for p in self.phrases} - {()}
        object.__setattr__(self, "_phrases", tuple(sorted(parsed, key=len, reverse=True)))

    def classify(self, text: str, own_text: str = "", logprob: float | None = None) -> Verdict:
        heard = words(text)
        if not heard or " ".join(heard) in NOISE_TRANSCRIPTS:
            return Verdict.NOISE
        if all(_HUM.fullmatch(word) for word in heard):
            return Verdict.BACKCHANNEL  # humming of any length ("M. M. M. M. M.", "hahaha ha")
        if _spelled_hum(text):
            return Verdict.BACKCHANNEL  # "M-A-M": espeak-ng's "Mhm." as tiny.en heard it
        if len(heard) <= self.max_words and self._covered(heard):
            return Verdict.BACKCHANNEL
        if self.self_speech and own_text and _overlap(heard, words(own_text)) >= self.self_overlap:
            return Verdict.SELF
        if self.doubts(text, logprob):
            return Verdict.NOISE  # a few words the recogniser doubts: a hum misread as words
        return Verdict.WORDS

    def doubts(self, text: str, logprob: float | None) -> bool:
        """Whether ``text`` is a few words its recogniser doubts (see ``min_logprob``)."""
        return (
            self.min_logprob is not None
            and logprob is not None
            and logprob < self.min_logprob
            and 0 < len(words(text)) <= self.max_words
        )

    def _covered(self, heard: list[str]) -> bool:
        """Whether ``heard`` is a run of backchannel phrases ("yeah okay", "uh huh right")."""
        i = 0
        while i < len(heard):
            if _HUM.fullmatch(heard[i]):
                i += 1
                continue
            phrase = next((p for p in self._phrases if tuple(heard[i : i + len(p)]) == p), None)
            if phrase is None:
                return False
            i += len(phrase)
        return True


def _spelled_hum(text: str) -> bool:
    """Whether ``text`` is one spelled-out run of a hum's letters ("M-A-M", "M-H-M.")."""
    spelled = _TAGS.sub(" ", text.lower()).strip().rstrip("?!,")
    if not _SPELLED.fullmatch(spelled):
        return False
    letters = set(re.findall(r"[a-z]", spelled))
    return letters <= _HUM_LETTERS and bool(letters & set("mh"))


def _overlap(heard: list[str], own: list[str]) -> float:
    """Share of ``heard`` found, in order, in ``own`` (an echo is a run of hark's words); a
    misheard long word (ratio >= 0.8 to one of hark's) counts as that word."""
    vocabulary = set(own)

    def nearest(word: str) -> str:
        if word in vocabulary or len(word) < 4:
            return word
        close = difflib.get_close_matches(word, vocabulary, 1, 0.8)
        return close[0] if close else word

    matcher = difflib.SequenceMatcher(None, [nearest(w) for w in heard], own, autojunk=False)
    return sum(block.size for block in matcher.get_matching_blocks()) / len(heard)


LOOP_RATIO = 2.4
"""faster-whisper's ``compression_ratio_threshold``: a decode that compresses better than this
is a repetition loop (which its temperature fallback retries; a greedy decode keeps it)."""


def looping(text: str) -> bool:
    """Whether ``text`` is a decoder's repetition loop: it compresses more than ``LOOP_RATIO``."""
    data = text.strip().encode()
    return bool(data) and len(data) / len(zlib.compress(data)) > LOOP_RATIO


def sound_key(heard: list[str]) -> str:
    """A rough sound spelling of words, run together: "th" "ph" "wh" as one letter, every run of
    vowels as "a", doubled letters once ("the weather" -> "tawatar", "the wind" -> "tawand")."""
    key = "".join(heard).replace("th", "t").replace("ph", "f").replace("wh", "w")
    return re.sub(r"(.)\1+", r"\1", re.sub(r"[aeiouy]+", "a", key))


def sounds_like(heard: list[str], own: list[str]) -> float:
    """1 - the edit distance from ``heard``'s sound key to the closest stretch of ``own``'s, per
    letter of ``heard``'s: 1.0 is a stretch of hark's words, near 0 nothing like them.

    ``own`` is a whole reply (hundreds of letters) and this runs on the event loop for every
    partial transcript of speech over it, so each row of the edit-distance table is a few numpy
    operations, not a Python loop over ``own``: an insertion chain ``row[j] = min(row[j],
    row[j-1] + 1)`` is ``minimum.accumulate(row - j) + j``."""
    a, b = sound_key(heard), sound_key(own)
    if not a:
        return 0.0
    other = np.frombuffer(b.encode("utf-32-le"), dtype=np.uint32)
    steps = np.arange(len(b) + 1)
    previous = np.zeros(len(b) + 1, dtype=np.int64)  # a stretch of ``b`` may start anywhere
    row = np.empty_like(previous)
    for i, letter in enumerate(a, 1):
        row[0] = i
        np.minimum(previous[1:] + 1, previous[:-1] + (other != ord(letter)), out=row[1:])
        previous = np.minimum.accumulate(row - steps) + steps
    return 1.0 - int(previous.min()) / len(a)


class Phase(enum.Enum):
    SPEAKING = "speaking"
    """hark speaks and nobody speaks over it."""
    PAUSED = "paused"
    """Speech over the reply: the reply is paused until what it says is known."""
    RESUMED = "resumed"
    """Not an interruption: the reply goes on, the speech is not a turn."""
    INTERRUPTED = "interrupted"


class Action(enum.Enum):
    NONE = "none"
    PAUSE = "pause"
    RESUME = "resume"
    INTERRUPT = "interrupt"


_P = Phase
ALLOWED: dict[Phase, frozenset[Phase]] = {
    _P.SPEAKING: frozenset({_P.PAUSED}),
    _P.PAUSED: frozenset({_P.RESUMED, _P.INTERRUPTED, _P.SPEAKING}),
    _P.RESUMED: frozenset({_P.INTERRUPTED, _P.SPEAKING, _P.PAUSED}),
    _P.INTERRUPTED: frozenset({_P.SPEAKING}),
}


class IllegalMove(RuntimeError):
    pass


class InterruptionGate:
    """One reply's listener. Every method takes the time (seconds, any monotonic clock) and
    returns what the caller must do to the reply."""

    def __init__(self, policy: InterruptionPolicy) -> None:
        self.policy = policy
        self.phase = Phase.SPEAKING
        self.verdict: Verdict | None = None
        """The verdict on the latest transcript of the current speech (None: none yet)."""
        self.started_at: float | None = None
        self.deadline: float | None = None

    def _move(self, target: Phase) -> None:
        if target not in ALLOWED[self.phase]:
            raise IllegalMove(f"Cannot move from {self.phase.value} to {target.value}.")
        self.phase = target

    def speech_started(self, now: float) -> Action:
        """Speech began over the reply."""
        if self.phase is Phase.INTERRUPTED:
            return Action.NONE
        if not self.policy.backchannels:
            self._move(Phase.PAUSED)
            self._move(Phase.INTERRUPTED)
            return Action.INTERRUPT
        self._move(Phase.PAUSED)
        self.verdict, self.started_at, self.deadline = None, now, now + self.policy.confirm_ms / 1000.0
        return Action.PAUSE

    def heard(
        self, text: str, own_text: str, *, complete: bool, now: float, logprob: float | None = None
    ) -> Action:
        """A transcript of the speech so far (``logprob``: how sure its recogniser was);
        ``complete``: it covers all of it (the speaker has paused or stopped). No words resume
        the reply if complete or past the bound."""
        if self.phase not in (Phase.PAUSED, Phase.RESUMED):
            return Action.NONE
        if not complete and looping(text):
            # A decoder stuck in a loop ("No, no, no, ..." a hundred times): greedy tiny.en on a
            # quiet leak after a little silence. It says nothing yet; the next transcript decides.
            return Action.NONE
        if not complete and self.policy.doubts(text, logprob):
            # A doubtful partial (a hum misread, or the first words of a real interruption) decides
            # nothing: it neither interrupts nor lets the bound resume; the next transcript decides.
            return Action.NONE
        self.verdict = self.policy.classify(text, own_text, logprob)
        if self.verdict is Verdict.WORDS:
            if not complete and self._new_words(text, own_text) < self.policy.interim_words:
                return Action.NONE  # one new word so far: the next transcript decides
            if not complete and self._own_sounding(text, own_text):
                return Action.NONE  # hark's words, the rest misread: the whole settles it
            self._move(Phase.INTERRUPTED)
            return Action.INTERRUPT
        past_bound = self.deadline is not None and now >= self.deadline
        if (complete or past_bound) and self.phase is Phase.PAUSED:
            self._move(Phase.RESUMED)
            return Action.RESUME
        return Action.NONE

    def _new_words(self, text: str, own_text: str) -> int:
        """Real words in ``text`` that are not hark's own: while the speaker is still talking,
        a word hark itself just said ("Here we" for its "Here is the weather") is no evidence
        of an interruption, since a partial transcript of its own voice leaking back is often
        half misheard."""
        heard = words(text)
        if not self.policy.self_speech or not own_text:
            return len(heard)
        own = set(words(own_text))
        return sum(1 for word in heard if word not in own)

    def _own_sounding(self, text: str, own_text: str) -> bool:
        """Whether a partial begins with one of hark's own words and sounds like its text: a leak
        of its voice whose tail tiny.en misread. A real interruption that begins with one of
        hark's words waits for the speaker's pause (the reply stays paused), it is not dropped."""
        if not self.policy.self_speech or self.policy.own_sound is None or not own_text:
            return False
        heard, own = words(text), words(own_text)
        return bool(heard) and heard[0] in own and sounds_like(heard, own) >= self.policy.own_sound

    def expire(self, now: float) -> Action:
        """The confirmation bound: only non-words heard so far resume the reply; with no
        transcript yet it stays paused (the next one decides)."""
        if self.phase is not Phase.PAUSED or self.deadline is None or now < self.deadline:
            return Action.NONE
        if self.verdict is None or self.verdict is Verdict.WORDS:
            return Action.NONE  # nothing heard yet, or one word still to be confirmed
        self._move(Phase.RESUMED)
        return Action.RESUME

    def speech_ended(self) -> Action:
        """The speech is over and was judged not an interruption: it is dropped."""
        if self.phase is Phase.PAUSED:
            self._move(Phase.RESUMED)
            self._move(Phase.SPEAKING)
            return Action.RESUME
        if self.phase is Phase.RESUMED:
            self._move(Phase.SPEAKING)
        return Action.NONE

    @property
    def deciding(self) -> bool:
        """Speech over the reply whose fate is not settled: PAUSED, or RESUMED with the speech
        still going (its later words may still interrupt)."""
        return self.phase in (Phase.PAUSED, Phase.RESUMED)
