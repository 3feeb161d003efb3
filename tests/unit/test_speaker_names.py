"""Speaker names: validated, carried from live labels to settled ones, used in the summary."""

from __future__ import annotations

import pytest

from hark.meetings.models import ActionItem, MeetingSummary
from hark.meetings.speaker_names import InvalidSpeakerNames, carry_names, named_summary, valid_names


def test_names_are_validated() -> None:
    assert valid_names({"S2": "  Maria "}) == {"S2": "Maria"}
    for bad in ({"Bob": "x"}, {"S0": "x"}, {"S2": ""}, {"S2": "a\nb"}, {"S2": "x" * 65}):
        with pytest.raises(InvalidSpeakerNames):
            valid_names(bad)


def test_a_name_follows_its_voice_when_the_labels_settle() -> None:
    live = ["S1", "S2", "S3", "S2", "S4", None]
    settled = ["S1", "S2", "S2", "S2", "S3", "S3"]  # S3 was S2's voice; S4 became S3
    names = {"S2": "Maria", "S4": "Li", "S7": "Given in start"}
    assert carry_names(live, settled, names) == {"S2": "Maria", "S3": "Li", "S7": "Given in start"}


def test_the_summary_uses_the_names_and_says_when_an_owner_is_unknown() -> None:
    summary = MeetingSummary(
        summary="S1 opened the review. S2 will ship on Friday.",
        decisions=["S2 ships on Friday"],
        actions=[
            ActionItem(task="Ship the release", owner="S2", due="Friday"),
            ActionItem(task="Book the room", owner="unknown"),
            ActionItem(task="Write the notes.", owner=None),
            ActionItem(task="Call S1 back", owner="Ana"),
        ],
    )
    named = named_summary(summary, {"S1": "Ana", "S2": "Maria"})
    assert named.summary == (
        "Ana opened the review. Maria will ship on Friday. Owner unknown for: Book the room; Write the notes."
    )
    assert named.decisions == ["Maria ships on Friday"]
    assert [a.owner for a in named.actions] == ["Maria", None, None, "Ana"]
    assert named.actions[3].task == "Call Ana back"
    # Without names nothing but the unknown owners changes.
    plain = named_summary(summary, {})
    assert plain.actions[0].owner == "S2" and plain.summary.startswith("S1 opened")
