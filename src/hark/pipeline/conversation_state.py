"""The conversation's state machine: an enum that refuses illegal moves."""

from __future__ import annotations

import enum


class ConversationState(enum.Enum):
    IDLE = "idle"
    LISTENING = "listening"
    THINKING = "thinking"
    SPEAKING = "speaking"


_S = ConversationState
ALLOWED: dict[ConversationState, frozenset[ConversationState]] = {
    _S.IDLE: frozenset({_S.LISTENING, _S.THINKING}),
    # LISTENING -> IDLE: the speech was noise (empty transcript) or the buffer was cleared.
    _S.LISTENING: frozenset({_S.THINKING, _S.IDLE}),
    # THINKING -> LISTENING: barge-in before any reply audio.
    _S.THINKING: frozenset({_S.SPEAKING, _S.LISTENING, _S.IDLE}),
    _S.SPEAKING: frozenset({_S.IDLE, _S.LISTENING}),
}


class IllegalTransition(RuntimeError):
    pass


class StateMachine:
    def __init__(self) -> None:
        self.state = ConversationState.IDLE

    def can(self, target: ConversationState) -> bool:
        return target in ALLOWED[self.state]

    def move(self, target: ConversationState) -> bool:
        """Move to ``target``; False when already there. Raises IllegalTransition otherwise."""
        if target is self.state:
            return False
        if target not in ALLOWED[self.state]:
            raise IllegalTransition(f"Cannot move from {self.state.value} to {target.value}.")
        self.state = target
        return True
