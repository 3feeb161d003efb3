"""Incremental sentence splitter: streamed LLM text deltas in, TTS-sized sentences out.

Pure and synchronous. Every possible boundary gets one of three verdicts: cut, no cut, or "not enough
text yet" (pending). A pending verdict stops the scan until more text arrives, and a verdict never
depends on text past what it looked at, so the output is the same however the stream is chunked
(one delta, or one character at a time).
"""

from __future__ import annotations

import re

_CANDIDATE = re.compile(r"[.!?…。！？]+|\n")  # a run of terminators ("?!", "..."), or a newline
_CJK_TERMINATORS = "。！？"  # CJK text has no spaces, so these end a sentence without any
_CLOSERS = "\"'”’»)]}」』）*_"  # belong to the sentence before them: He said "hi." Then
_OPENERS = "\"'“‘«([{「『¿¡*_"  # stripped from a word before looking it up as an abbreviation
_HSPACE = " \t\r\f\v"
_MARKER = re.compile(r"(?:\d{1,3}[.)]|[-*•+])[ \t]")  # a list item: "1. ", "2) ", "- ", "* ", "• "
_MARKER_PREFIX = re.compile(r"\d{1,3}[.)]?|[-*•+]")  # what may still grow into a marker
_CLAUSE = re.compile(r"[,;:](?=\s)|\s[-–—](?=\s)")  # "1,000" and "well-known" are not clauses
_SPACE = re.compile(r"\s")
_INITIALS = re.compile(r"(?:[^\W\d_]\.)*[^\W\d_]")  # "J" of "J.", "U.S", "e.g", "i.e", "a.m", "p.m"
# Words that end with a dot but rarely end a sentence. "etc." is deliberately absent: it usually
# closes a sentence, so "etc. Then" splits (a lowercase word after it still never does).
_ABBREVIATIONS = frozenset({
    "mr", "mrs", "ms", "mx", "dr", "prof", "sr", "jr", "st", "mt", "vs", "approx", "ca", "cf", "al", "inc",
    "ltd", "co", "corp", "dept", "gen", "gov", "col", "lt", "sgt", "capt", "rev", "hon", "ave", "blvd", "rd",
    "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
})  # fmt: skip
# Abbreviations only in front of a number: "No. 5", "Fig. 3", but "He said no. Then" is two sentences.
_NUMBER_ABBREVIATIONS = frozenset({"no", "nos", "fig", "figs", "vol", "pp", "ch", "sec", "art"})


class SentenceSplitter:
    """Feed text deltas with ``push``; call ``flush`` at the end of the stream.

    Sentences come back stripped and non-empty, never longer than ``max_chars``; one shorter than
    ``min_chars`` is held back and joined with the next (the last one, on flush, is not held).

    ``first_clause_words`` > 0: the first chunk may end at a clause boundary (``,`` ``;`` ``:``
    or a spaced dash, followed by a space) once it has at least that many words, so speech can
    start before the first sentence is written; every later chunk is a sentence.
    """

    def __init__(self, *, min_chars: int = 1, max_chars: int = 300, first_clause_words: int = 0) -> None:
        if max_chars < 1:
            raise ValueError(f"max_chars must be at least 1, got {max_chars}")
        if not 0 <= min_chars <= max_chars:
            raise ValueError(f"min_chars must be between 0 and max_chars ({max_chars}), got {min_chars}")
        if first_clause_words < 0:
            raise ValueError(f"first_clause_words must be 0 or more, got {first_clause_words}")
        self._min = min_chars
        self._max = max_chars
        self._first_clause_words = first_clause_words
        self._first = True
        self._buf = ""

    def push(self, text: str) -> list[str]:
        """Feed a text delta (any size, may split words/numbers anywhere); return sentences now complete."""
        self._buf += text
        return self._drain(final=False)

    def flush(self) -> list[str]:
        """End of stream: return what remains (stripped), if anything non-blank. Resets the splitter."""
        out = self._drain(final=True)
        rest, self._buf = self._buf.strip(), ""
        self._first = True
        return [*out, rest] if rest else out

    def _drain(self, *, final: bool) -> list[str]:
        out: list[str] = []
        while True:
            self._buf = self._buf.lstrip()  # so buffer index == sentence length, and line start == 0
            cut = self._next_cut(final)
            if cut is None:
                return out
            out.append(self._buf[:cut].rstrip())  # non-empty: the buffer starts with a non-space
            self._buf = self._buf[cut:]
            self._first = False

    def _next_cut(self, final: bool) -> int | None:
        """Where the first sentence of the buffer ends, or None when that is not known yet."""
        sentence = self._sentence_cut(final)
        if not (self._first and self._first_clause_words):
            return sentence
        clause = self._clause_cut()
        if clause is not None and (sentence is None or clause < sentence):
            return clause
        return sentence

    def _clause_cut(self) -> int | None:
        """The end of the first clause with enough words. Its verdict needs only the text up to the
        space after it (the boundary pattern asks for that space), so chunking cannot change it."""
        for match in _CLAUSE.finditer(self._buf, 0, self._max + 1):
            if len(self._buf[: match.end()].split()) >= self._first_clause_words:
                return match.end()
        return None

    def _sentence_cut(self, final: bool) -> int | None:
        buf = self._buf
        for match in _CANDIDATE.finditer(buf):
            if match.group() == "\n":
                end = match.start()
                if end > self._max:
                    break
                verdict = self._after_newline(match.end(), final)
            else:
                end = match.end()
                while end < len(buf) and buf[end] in _CLOSERS:
                    end += 1
                if end > self._max:
                    break
                verdict = self._after_terminator(match.start(), match.group(), end, final)
            if verdict is None:
                return None  # an earlier boundary must be settled before any later one counts
            if verdict and len(buf[:end].rstrip()) >= self._min:
                return end
        return self._overflow_cut() if len(buf) > self._max else None

    def _after_terminator(self, start: int, run: str, end: int, final: bool) -> bool | None:
        """Does the terminator run at ``start`` (closers included up to ``end``) end a sentence?"""
        buf = self._buf
        if end == len(buf):
            return True if final else None  # the next delta may be "5" of "3.5" or "com" of "example.com"
        if run[-1] in _CJK_TERMINATORS:
            return True
        if not buf[end].isspace():
            return False  # 3.5, 10.30, v1.2.3, example.com, a@b.co, "e.g" inside "e.g."
        k, newlines = end, 0
        while k < len(buf) and buf[k].isspace():
            newlines += buf[k] == "\n"
            if newlines == 2:
                return True  # blank line: a paragraph break always ends the sentence
            k += 1
        if k == len(buf):
            return True if final else None  # whitespace so far; what follows decides
        following = buf[k]
        if following.islower():
            return False  # "wait... what", "vs. the": the sentence goes on
        return run != "." or not self._is_abbreviation(start, following)

    def _is_abbreviation(self, dot: int, following: str) -> bool:
        """Is the word ending at the single ``.`` at ``dot`` an abbreviation, initial or list number?"""
        buf = self._buf
        begin = dot
        while begin > 0 and not buf[begin - 1].isspace():
            begin -= 1
        word = buf[begin:dot].lstrip(_OPENERS)
        lowered = word.lower()
        if lowered in _ABBREVIATIONS or _INITIALS.fullmatch(word):
            return True
        if lowered in _NUMBER_ABBREVIATIONS:
            return following.isdigit()
        # "1. First item": a number opening a line is a list marker; "I was born in 1990. It" is not.
        line_start = buf.rfind("\n", 0, begin) + 1
        return word.isdigit() and not buf[line_start:begin].strip()

    def _after_newline(self, pos: int, final: bool) -> bool | None:
        """Does the newline before ``pos`` end a chunk (blank line, or a list item on the next line)?"""
        buf = self._buf
        while pos < len(buf) and buf[pos] in _HSPACE:
            pos += 1
        if pos == len(buf):
            return False if final else None
        if buf[pos] == "\n" or _MARKER.match(buf, pos):
            return True
        if not final and _MARKER_PREFIX.fullmatch(buf, pos):
            return None  # "\n1" may yet become "\n1. item" (or "\n1990 was...")
        return False

    def _overflow_cut(self) -> int:
        """Run-on text past max_chars: cut at the last clause boundary, else the last space, so TTS
        is never starved. Only the first max_chars + 1 characters are looked at (one of lookahead),
        which keeps the cut independent of chunking. A word longer than max_chars is cut hard."""
        limit = self._max + 1
        clause = max((m.end() for m in _CLAUSE.finditer(self._buf, 0, limit)), default=0)
        if clause:
            return clause
        space = max((m.start() for m in _SPACE.finditer(self._buf, 0, limit)), default=0)
        return space or self._max


def split_sentences(
    text: str, *, min_chars: int = 1, max_chars: int = 300, first_clause_words: int = 0
) -> list[str]:
    """Split a whole text at once: the same result as pushing it in any chunks, then flushing."""
    splitter = SentenceSplitter(
        min_chars=min_chars, max_chars=max_chars, first_clause_words=first_clause_words
    )
    return splitter.push(text) + splitter.flush()
