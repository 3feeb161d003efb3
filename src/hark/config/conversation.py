"""How a conversation behaves: its prompt, history, reply pacing, speculation and tools."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from hark.config.base import Section

DEFAULT_SYSTEM_PROMPT = (
    "You are hark, a helpful voice assistant. Your replies are spoken aloud, so answer in short, "
    "natural sentences without lists, markdown or emoji."
)


class ConversationSettings(Section):
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    history_turns: int = Field(10, ge=1, le=200)
    """User/assistant exchanges sent to the LLM, the current one included."""
    output_chunk_ms: int = Field(100, ge=10, le=1000)
    """Reply audio is sent in chunks of this length."""
    output_lead_ms: int = Field(600, ge=0, le=10_000)
    """How far reply audio may run ahead of real-time playback."""
    speculative_transcript: bool = True
    """At a short pause (64 ms of silence) inside a turn, transcribe what was said so far; if the
    turn ends on that pause, that is the final transcript (made during the end-of-turn silence)."""
    speculative_reply: bool = True
    """Needs ``speculative_transcript``. At that pause, also start the reply (LLM and the first
    sentence's TTS) from the speculative transcript, without sending anything; when the turn
    ends on that pause it is spoken at once, when the user goes on it is dropped. Faster
    answers, at the price of LLM requests that are thrown away (each pause the user speaks on):
    turn it off when those are billed and the cost matters more than the latency."""
    first_clause_words: int = Field(4, ge=0, le=50)
    """Start speaking the reply at its first clause (a ``,`` ``;`` ``:`` or spaced dash) when that
    clause has at least this many words, instead of at the end of its first sentence; 0 waits
    for the sentence. Each chunk is synthesised on its own, so the first clause ends with the
    TTS's clause-final intonation (docs/benchmarks.md, speed-work entry 20)."""
    tools: list[Literal["current_time"]] = Field(default_factory=list)
    """Tools the LLM may call (its server must support OpenAI-style tools)."""
