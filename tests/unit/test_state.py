"""Tests for the conversation state machine (hark.pipeline.conversation_state)."""

from __future__ import annotations

import itertools

import pytest

from hark.pipeline.conversation_state import ALLOWED, ConversationState, IllegalTransition, StateMachine

S = ConversationState

LEGAL: set[tuple[ConversationState, ConversationState]] = {
    (S.IDLE, S.LISTENING),
    (S.IDLE, S.THINKING),
    (S.LISTENING, S.THINKING),
    (S.LISTENING, S.IDLE),
    (S.THINKING, S.SPEAKING),
    (S.THINKING, S.LISTENING),
    (S.THINKING, S.IDLE),
    (S.SPEAKING, S.IDLE),
    (S.SPEAKING, S.LISTENING),
}
ILLEGAL: list[tuple[ConversationState, ConversationState]] = sorted(
    (
        (a, b)
        for a, b in itertools.product(ConversationState, ConversationState)
        if a is not b and (a, b) not in LEGAL
    ),
    key=lambda pair: (pair[0].value, pair[1].value),
)
# A path from IDLE to every state through legal moves only.
PATH_TO: dict[ConversationState, list[ConversationState]] = {
    S.IDLE: [],
    S.LISTENING: [S.LISTENING],
    S.THINKING: [S.THINKING],
    S.SPEAKING: [S.THINKING, S.SPEAKING],
}


def machine_in(state: ConversationState) -> StateMachine:
    machine = StateMachine()
    for step in PATH_TO[state]:
        assert machine.move(step) is True
    assert machine.state is state
    return machine


def test_starts_idle() -> None:
    assert StateMachine().state is S.IDLE


def test_enum_values() -> None:
    assert [s.value for s in ConversationState] == ["idle", "listening", "thinking", "speaking"]


def test_allowed_table_matches_the_documented_moves() -> None:
    table = {(a, b) for a, targets in ALLOWED.items() for b in targets}
    assert table == LEGAL
    assert set(ALLOWED) == set(ConversationState)


def test_illegal_list_is_complete() -> None:
    # 4 states: 12 ordered pairs of distinct states, 9 legal, so 3 illegal.
    assert ILLEGAL == [
        (S.IDLE, S.SPEAKING),
        (S.LISTENING, S.SPEAKING),
        (S.SPEAKING, S.THINKING),
    ]


@pytest.mark.parametrize(("source", "target"), sorted(LEGAL, key=lambda p: (p[0].value, p[1].value)))
def test_every_allowed_move_succeeds(source: ConversationState, target: ConversationState) -> None:
    machine = machine_in(source)
    assert machine.can(target) is True
    assert machine.move(target) is True
    assert machine.state is target


@pytest.mark.parametrize(("source", "target"), ILLEGAL)
def test_every_disallowed_move_raises_naming_both_states(
    source: ConversationState, target: ConversationState
) -> None:
    machine = machine_in(source)
    assert machine.can(target) is False
    with pytest.raises(IllegalTransition) as info:
        machine.move(target)
    assert str(info.value) == f"Cannot move from {source.value} to {target.value}."
    assert source.value in str(info.value)
    assert target.value in str(info.value)
    # A refused move leaves the state alone.
    assert machine.state is source


@pytest.mark.parametrize("state", list(ConversationState))
def test_moving_to_the_same_state_returns_false(state: ConversationState) -> None:
    machine = machine_in(state)
    assert machine.move(state) is False
    assert machine.state is state
    # Staying put is not in the table of moves.
    assert machine.can(state) is False


def test_illegal_transition_is_a_runtime_error() -> None:
    assert issubclass(IllegalTransition, RuntimeError)


def test_a_full_conversation_cycle() -> None:
    machine = StateMachine()
    sequence = [S.LISTENING, S.THINKING, S.SPEAKING, S.LISTENING, S.THINKING, S.IDLE]
    assert [machine.move(s) for s in sequence] == [True] * len(sequence)
    assert machine.state is S.IDLE
