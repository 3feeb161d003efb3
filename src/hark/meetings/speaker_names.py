"""Names the client gives speaker labels ({"S2": "Maria"}), and the summary that uses them."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from hark.errors import HarkError
from hark.meetings.models import MeetingSummary

LABEL = re.compile(r"S[1-9][0-9]{0,2}")
MAX_NAMES = 64
MAX_NAME_CHARS = 64
UNKNOWN_OWNERS = frozenset({"", "unknown", "none", "null", "n/a", "tbd", "nobody", "unassigned"})


class InvalidSpeakerNames(HarkError):
    """Names must map labels like "S2" to 1-64 printable characters."""


def valid_names(names: Mapping[str, str]) -> dict[str, str]:
    """The names, stripped; raises InvalidSpeakerNames for a bad label or name."""
    if len(names) > MAX_NAMES:
        raise InvalidSpeakerNames(f"at most {MAX_NAMES} speaker names")
    out: dict[str, str] = {}
    for label, name in names.items():
        if not isinstance(label, str) or not LABEL.fullmatch(label):
            raise InvalidSpeakerNames(f"{str(label)[:16]!r} is not a speaker label like 'S2'")
        if not isinstance(name, str) or not 0 < len(name.strip()) <= MAX_NAME_CHARS or not name.isprintable():
            raise InvalidSpeakerNames(f"the name for {label} must be 1-{MAX_NAME_CHARS} printable characters")
        out[label] = name.strip()
    return out


def carry_names(
    live: Sequence[str | None], settled: Sequence[str | None], names: Mapping[str, str]
) -> dict[str, str]:
    """The client named tentative (live) labels; the settled labels may differ (two tentative
    speakers were one voice, numbers closed up). Each name goes to the settled label most of
    that live label's segments got, so a name keeps following the voice it was given to.
    A name for a label nobody had live (given in ``start``) stays on that label."""
    votes: dict[str, dict[str, int]] = {}
    for before, after in zip(live, settled, strict=True):
        if before is not None and after is not None:
            votes.setdefault(before, {}).setdefault(after, 0)
            votes[before][after] += 1
    carried: dict[str, str] = {}
    for label, name in names.items():
        counts = votes.get(label)
        target = max(counts, key=lambda k: counts[k]) if counts else label
        carried.setdefault(target, name)
    return carried


def _rename(text: str, names: Mapping[str, str]) -> str:
    if not names:
        return text
    return re.sub(r"\bS[1-9][0-9]{0,2}\b", lambda m: names.get(m.group(0), m.group(0)), text)


def named_summary(summary: MeetingSummary, names: Mapping[str, str]) -> MeetingSummary:
    """Speaker labels the model still wrote replaced by the names given; an action without an
    owner gets ``owner: null`` and the summary says whose actions are unknown."""
    actions = []
    unowned: list[str] = []
    for action in summary.actions:
        owner = (action.owner or "").strip()
        if owner.lower() in UNKNOWN_OWNERS:
            owner = ""
        task = _rename(action.task, names)
        if not owner:
            unowned.append(task)
        actions.append(
            action.model_copy(update={"task": task, "owner": names.get(owner, _rename(owner, names)) or None})
        )
    text = _rename(summary.summary, names)
    if unowned:
        listed = "; ".join(task.rstrip(".") for task in unowned)
        text = f"{text.rstrip()} Owner unknown for: {listed}."
    return MeetingSummary(
        summary=text, decisions=[_rename(d, names) for d in summary.decisions], actions=actions
    )
