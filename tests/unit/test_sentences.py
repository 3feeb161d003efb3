"""Tests for the incremental sentence splitter (hark.pipeline.sentences)."""

from __future__ import annotations

import random
import re

import pytest

from hark.pipeline.sentences import SentenceSplitter, split_sentences

# (input, expected sentences) with the default settings.
EXAMPLES: list[tuple[str, list[str]]] = [
    # Basics, empty input and flush of an unterminated tail.
    ("", []),
    ("   \n\t ", []),
    ("Hello world.", ["Hello world."]),
    ("No terminator here", ["No terminator here"]),
    ("  Hello there.   How are you?  I am fine!  ", ["Hello there.", "How are you?", "I am fine!"]),
    ("Really?! Yes. Wow!!! Ok", ["Really?!", "Yes.", "Wow!!!", "Ok"]),
    ("The answer is 42. Next question.", ["The answer is 42.", "Next question."]),
    ("I was born in 1990. 2000 came later.", ["I was born in 1990.", "2000 came later."]),
    ("Hello.\nworld goes on", ["Hello.\nworld goes on"]),
    ("Is it? Yes.\nDone.", ["Is it?", "Yes.", "Done."]),
    # Closing quotes and brackets stay with their sentence; opening ones start the next.
    ('He said "hi." Then he left.', ['He said "hi."', "Then he left."]),
    ("(This is an aside.) Next one.", ["(This is an aside.)", "Next one."]),
    ('"Where?" she asked. "Here." Fine.', ['"Where?" she asked.', '"Here."', "Fine."]),
    ("He said “stop!” Then ran.", ["He said “stop!”", "Then ran."]),
    ("**Done.** Next one.", ["**Done.**", "Next one."]),
    # Decimals, versions, times, URLs, e-mail addresses.
    ("It costs 3.5 dollars. Then 0.25 more.", ["It costs 3.5 dollars.", "Then 0.25 more."]),
    ("Version 1.2.3 is out. Update now.", ["Version 1.2.3 is out.", "Update now."]),
    ("Meet at 10.30 today. Bring snacks.", ["Meet at 10.30 today.", "Bring snacks."]),
    (
        "Visit example.com for more. Or mail john.doe@example.com today.",
        ["Visit example.com for more.", "Or mail john.doe@example.com today."],
    ),
    ("See https://example.com/a.b?x=1&y=2 now! Ok.", ["See https://example.com/a.b?x=1&y=2 now!", "Ok."]),
    ("Go to example.com. It is fast.", ["Go to example.com.", "It is fast."]),
    # Abbreviations and initials.
    ("Mr. Smith met Dr. Jones. They talked.", ["Mr. Smith met Dr. Jones.", "They talked."]),
    ("J. R. R. Tolkien wrote books. They sold well.", ["J. R. R. Tolkien wrote books.", "They sold well."]),
    ("Apple vs. Google is old news. Still.", ["Apple vs. Google is old news.", "Still."]),
    ("See No. 5 and Fig. 3 there. Ok.", ["See No. 5 and Fig. 3 there.", "Ok."]),
    ("He said no. Then he left.", ["He said no.", "Then he left."]),
    ("Use a tool, e.g. A hammer.", ["Use a tool, e.g. A hammer."]),
    # "etc." before a capitalised word ends the sentence; before a lowercase one it does not.
    ("Apples, pears, etc. Then we left.", ["Apples, pears, etc.", "Then we left."]),
    ("Apples, pears, etc. and more.", ["Apples, pears, etc. and more."]),
    # Ellipsis.
    ("Well... I think so.", ["Well...", "I think so."]),
    ("wait... what is that?", ["wait... what is that?"]),
    ("Well… I think so.", ["Well…", "I think so."]),
    ("wait… what", ["wait… what"]),
    ("wait...what. Yes", ["wait...what.", "Yes"]),
    # Lists.
    ("1. First item\n2. Second item", ["1. First item", "2. Second item"]),
    ("1. First item.\n2. Second item.", ["1. First item.", "2. Second item."]),
    ("Steps:\n1. Mix it\n2) Bake it\n10. Eat it.", ["Steps:", "1. Mix it", "2) Bake it", "10. Eat it."]),
    ("Shopping:\n- eggs\n- milk\n* bread\n• jam", ["Shopping:", "- eggs", "- milk", "* bread", "• jam"]),
    ("**Note:** keep it\n- **bold** item", ["**Note:** keep it", "- **bold** item"]),
    ("Intro\n  - indented item", ["Intro", "- indented item"]),
    ("Intro\n1999 was a year\n-5 degrees", ["Intro\n1999 was a year\n-5 degrees"]),
    # Paragraph breaks.
    ("First paragraph\n\nSecond paragraph", ["First paragraph", "Second paragraph"]),
    ("One\n \t\n\n\nTwo\r\n\r\nThree", ["One", "Two", "Three"]),
    ("Mr.\n\nSmith", ["Mr.", "Smith"]),
    # CJK terminators need no space after them.
    ("你好。世界！再见？", ["你好。", "世界！", "再见？"]),
    ("他说：「好。」然后走了。", ["他说：「好。」", "然后走了。"]),
]

ABBREVIATIONS = [
    "Mr.", "Mrs.", "Ms.", "Dr.", "Prof.", "Sr.", "Jr.", "St.", "vs.", "e.g.", "i.e.", "a.m.", "p.m.",
    "U.S.", "approx.", "Inc.", "Ltd.", "Co.", "Jan.", "Feb.", "Mar.", "Apr.", "Jun.", "Jul.", "Aug.",
    "Sep.", "Sept.", "Oct.", "Nov.", "Dec.", "J.", "(Dr.",
]  # fmt: skip


def chunked(text: str, sizes: list[int]) -> list[str]:
    pieces, pos = [], 0
    for size in sizes:
        pieces.append(text[pos : pos + size])
        pos += size
    return [*pieces, text[pos:]]


def random_chunks(text: str, rng: random.Random) -> list[str]:
    return chunked(text, [rng.randint(0, 7) for _ in range(len(text))])


def feed(pieces: list[str], **kwargs: int) -> list[str]:
    splitter = SentenceSplitter(**kwargs)
    out: list[str] = []
    for piece in pieces:
        out += splitter.push(piece)
    return out + splitter.flush()


def assert_chunking_invariant(text: str, expected: list[str], seeds: int = 20, **kwargs: int) -> None:
    assert feed(list(text), **kwargs) == expected, "char by char"
    for seed in range(seeds):
        assert feed(random_chunks(text, random.Random(seed)), **kwargs) == expected, f"seed {seed}"


@pytest.mark.parametrize(("text", "expected"), EXAMPLES)
def test_examples(text: str, expected: list[str]) -> None:
    assert split_sentences(text) == expected


@pytest.mark.parametrize(("text", "expected"), EXAMPLES)
def test_examples_any_chunking(text: str, expected: list[str]) -> None:
    assert_chunking_invariant(text, expected)


@pytest.mark.parametrize("abbr", ABBREVIATIONS)
def test_abbreviations_do_not_end_sentences(abbr: str) -> None:
    text = f"I saw {abbr} Smith today. Then I left."
    assert split_sentences(text) == [f"I saw {abbr} Smith today.", "Then I left."]


@pytest.mark.parametrize(
    ("pushes", "expected"),
    [
        # A terminator at the end of the buffer waits for what follows it.
        (["It costs 3."], [[]]),
        (["It costs 3.", "5 dollars. ", "Then"], [[], [], ["It costs 3.5 dollars."]]),
        (["Visit example.", "com now. ", "\n", "Next"], [[], [], [], ["Visit example.com now."]]),
        (['He said "hi.', '"', " ", "T"], [[], [], [], ['He said "hi."']]),
        (["Hi.", "\n", "\n"], [[], [], ["Hi."]]),
        # ... and is emitted as soon as the next sentence visibly starts.
        (["Hello there. H"], [["Hello there."]]),
        (["One. Two. Three. F"], [["One.", "Two.", "Three."]]),
        (["你好。", "世"], [[], ["你好。"]]),
        # A newline may be the start of a list marker.
        (["Intro\n1", ". Item"], [[], ["Intro"]]),
        (["Intro\n1", "999 was"], [[], []]),
        (["Intro\n-", " item"], [[], ["Intro"]]),
    ],
)
def test_push_emits_only_when_provably_complete(pushes: list[str], expected: list[list[str]]) -> None:
    splitter = SentenceSplitter()
    assert [splitter.push(piece) for piece in pushes] == expected


def test_flush() -> None:
    splitter = SentenceSplitter()
    assert splitter.push("Hello there. How are") == ["Hello there."]
    assert splitter.flush() == ["How are"]
    assert splitter.flush() == []
    # Reusable after a flush; a terminator at the very end is complete on flush.
    assert splitter.push("It costs 3.") == []
    assert splitter.flush() == ["It costs 3."]
    assert splitter.push("  \n ") == []
    assert splitter.flush() == []
    assert SentenceSplitter().flush() == []
    assert split_sentences("Ends with Mr.") == ["Ends with Mr."]


def test_flush_returns_pending_sentences_separately() -> None:
    splitter = SentenceSplitter()
    assert splitter.push("One. Two.  ") == ["One."]
    assert splitter.flush() == ["Two."]
    splitter.push("Intro\n1")
    assert splitter.flush() == ["Intro\n1"]


@pytest.mark.parametrize(
    ("text", "max_chars", "expected"),
    [
        # Last clause boundary before max_chars.
        (
            "one two three, four five six, seven eight nine",
            20,
            ["one two three,", "four five six,", "seven eight nine"],
        ),
        ("alpha; beta gamma delta: epsilon zeta", 20, ["alpha;", "beta gamma delta:", "epsilon zeta"]),
        ("left side - right side stuff", 15, ["left side -", "right side", "stuff"]),
        # "1,000" is not a clause boundary: cut at the last space instead.
        ("we counted 1,000 sheep today", 18, ["we counted 1,000", "sheep today"]),
        # No clause boundary: the last space.
        ("aaa bbb ccc ddd eee", 10, ["aaa bbb", "ccc ddd", "eee"]),
        # No space at all: a hard cut.
        ("abcdefghijkl", 5, ["abcde", "fghij", "kl"]),
        # A terminator before max_chars still wins.
        (
            "Short one. And then a long tail without stops",
            20,
            ["Short one.", "And then a long tail", "without stops"],
        ),
        ("Exactly twenty chars. Next", 21, ["Exactly twenty chars.", "Next"]),
    ],
)
def test_max_chars(text: str, max_chars: int, expected: list[str]) -> None:
    assert split_sentences(text, max_chars=max_chars) == expected
    assert all(len(sentence) <= max_chars for sentence in expected)
    assert_chunking_invariant(text, expected, max_chars=max_chars)


def test_run_on_is_cut_before_the_stream_ends() -> None:
    splitter = SentenceSplitter(max_chars=30)
    assert splitter.push("this goes on and on, with no end in sight at all") == ["this goes on and on,"]


@pytest.mark.parametrize(
    ("text", "min_chars", "expected"),
    [
        ("Hi. How are you?", 10, ["Hi. How are you?"]),
        ("Hi. Yo. How are you? Fine.", 10, ["Hi. Yo. How are you?", "Fine."]),  # last one: flushed short
        ("Hello there. Ok.", 10, ["Hello there.", "Ok."]),
        ("Hi.\n\nHow are you doing?", 10, ["Hi.\n\nHow are you doing?"]),
        ("Hi. How are you?", 3, ["Hi.", "How are you?"]),
        ("Hi. How are you?", 0, ["Hi.", "How are you?"]),
    ],
)
def test_min_chars(text: str, min_chars: int, expected: list[str]) -> None:
    assert split_sentences(text, min_chars=min_chars) == expected
    assert_chunking_invariant(text, expected, min_chars=min_chars)


def test_min_chars_holds_short_sentence_back() -> None:
    splitter = SentenceSplitter(min_chars=10)
    assert splitter.push("Hi. How are you? ") == []
    assert splitter.push("Good") == ["Hi. How are you?"]
    assert splitter.flush() == ["Good"]


@pytest.mark.parametrize(
    ("kwargs"), [{"max_chars": 0}, {"min_chars": -1}, {"min_chars": 11, "max_chars": 10}]
)
def test_invalid_settings(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        SentenceSplitter(**kwargs)


WORDS = [
    "the", "a", "voice", "server", "Hello", "World", "I", "it", "3.5", "0.25", "10.30", "v1.2.3",
    "example.com", "john@example.com", "Dr.", "Mr.", "e.g.", "U.S.", "etc.", "J.", "1.", "42", "(note)",
    '"quoted"', "well-known", "1,000", "**bold**", "café", "Über", "x", "B",
]  # fmt: skip
PUNCTUATION = ["", "", "", "", ".", ".", "!", "?", "?!", "...", "…", ",", ";", ":", '."', ".)", " -"]
SEPARATORS = [" "] * 12 + ["  ", "\n", "\n\n", "\n- ", "\n1. ", "\n\t* "]


def generated_text(rng: random.Random) -> str:
    parts = []
    for _ in range(rng.randint(0, 60)):
        word = rng.choice(WORDS)
        parts.append((word.capitalize() if rng.random() < 0.3 else word) + rng.choice(PUNCTUATION))
        parts.append(rng.choice(SEPARATORS))
    return "".join(parts)


@pytest.mark.parametrize("seed", range(150))
def test_generated_text_loses_nothing_and_ignores_chunking(seed: int) -> None:
    rng = random.Random(seed)
    text = generated_text(rng)
    kwargs = {"min_chars": rng.choice([0, 1, 15]), "max_chars": rng.choice([25, 60, 300])}
    whole = split_sentences(text, **kwargs)
    assert all(sentence and sentence == sentence.strip() for sentence in whole)
    assert all(len(sentence) <= kwargs["max_chars"] for sentence in whole)
    # No text lost, duplicated or reordered: same words, and same characters once spaces are dropped.
    assert " ".join(whole).split() == text.split()
    assert re.sub(r"\s", "", "".join(whole)) == re.sub(r"\s", "", text)
    assert_chunking_invariant(text, whole, seeds=5, **kwargs)


# -- the first chunk may be a clause ---------------------------------------------------------

CLAUSE_EXAMPLES: list[tuple[str, list[str]]] = [
    (
        "Well, in Paris, it is sunny today. Enjoy it.",
        ["Well, in Paris,", "it is sunny today.", "Enjoy it."],
    ),
    # Too few words before the comma: the first chunk runs on to the next boundary.
    ("Sure, Paris is sunny and mild today. Yes.", ["Sure, Paris is sunny and mild today.", "Yes."]),
    (
        "It costs 1,000 euros, which is a lot. Yes, it is.",
        ["It costs 1,000 euros,", "which is a lot.", "Yes, it is."],
    ),
    ("In Paris it is sunny - take a hat. Bye.", ["In Paris it is sunny -", "take a hat.", "Bye."]),
    (
        "Paris is sunny and mild today. You will not need it.",
        ["Paris is sunny and mild today.", "You will not need it."],
    ),
]


@pytest.mark.parametrize(("text", "expected"), CLAUSE_EXAMPLES)
def test_the_first_chunk_may_end_at_a_clause(text: str, expected: list[str]) -> None:
    assert split_sentences(text, first_clause_words=3) == expected


def test_a_first_clause_is_found_however_the_text_is_streamed() -> None:
    rng = random.Random(7)
    text = "So, as far as I know, the museum opens at nine: come early. It gets busy, they say."
    whole = split_sentences(text, first_clause_words=4)
    for _ in range(200):
        splitter = SentenceSplitter(first_clause_words=4)
        out: list[str] = []
        i = 0
        while i < len(text):
            step = rng.randint(1, 6)
            out += splitter.push(text[i : i + step])
            i += step
        assert out + splitter.flush() == whole
    assert whole[0] == "So, as far as I know,"


def test_no_first_clause_is_shorter_than_its_minimum() -> None:
    rng = random.Random(11)
    words = ["yes,", "well", "the", "sun,", "is", "out;", "and", "so", "-", "we", "go", "home."]
    for _ in range(300):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(1, 20)))
        for minimum in (2, 3, 5):
            chunks = split_sentences(text, first_clause_words=minimum)
            first = chunks[0] if chunks else ""
            if len(chunks) > 1 and first[-1] in ",;:-":  # cut at a clause, not the whole reply
                assert len(first.split()) >= minimum, (text, chunks)
