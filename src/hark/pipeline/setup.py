"""What a conversation is built with: its settings, and ids for its items and responses."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from hark.pipeline.interruptions import InterruptionPolicy
from hark.pipeline.turns import TurnConfig


@dataclass(frozen=True, slots=True)
class ConversationConfig:
    system_prompt: str
    history_turns: int
    turn: TurnConfig
    prefix_ms: int
    max_turn_s: float
    partial_interval_ms: int
    output_chunk_ms: int
    output_lead_ms: int
    language: str | None = None
    speculative_transcript: bool = True
    """Transcribe at a pause, before the turn is known to be over."""
    speculative_reply: bool = True
    """Start the reply (LLM and first TTS) at a pause, before the turn is known to be over."""
    first_clause_words: int = 4
    """Speak the reply's first clause as soon as it is written, when it has at least this many
    words (0: wait for the first sentence)."""
    interruptions: InterruptionPolicy = field(default_factory=InterruptionPolicy)
    """Speech over a spoken reply: backchannels and self-speech that do not interrupt it."""


@dataclass(frozen=True, slots=True)
class LLMStatus:
    mode: str
    """"llm" when a model answers, "echo" when none is configured or reachable."""
    message: str
    setting: str | None = None


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:20]}"
