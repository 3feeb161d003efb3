"""What every client says and what the stand-in LLM answers, and the checks they all share."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from tests.speech import silence, speak

TOOL_NAME = "get_weather"
TOOL_DESCRIPTION = "The current weather in a city."
TOOL_ARGUMENTS = json.dumps({"city": "Paris"})
TOOL_WORD = "weather"
TOOL_RESULT = "Sunny and 21 degrees in Paris"
TOOL_REPLY = "Here is the weather: {result}."

WEATHER_QUESTION = "What is the weather like in Paris today?"
STORY_WORD = "story"
STORY_REQUEST = "Please tell me a story about Paris."
STORY = " ".join(
    [
        "Once upon a time, on the left bank of the river, there lived a baker named Claire.",
        "Every morning before sunrise she lit her oven and shaped the dough by hand.",
        "The whole street woke to the smell of warm bread and roasted almonds.",
        "One winter the river froze, and the boats that brought her flour could not sail.",
        "So the neighbours carried sacks of flour across the ice, one after another.",
        "That spring Claire baked a loaf for every family who had helped her.",
    ]
)
SHORT_ANSWER = "Glad to help. Is there anything else?"
JOKE_REQUEST = "Tell me a joke."
THANKS = "Thank you, that is all for now."
BARGE_IN = "Please stop talking now."


def spoken(text: str) -> bytes:
    """espeak-ng saying ``text`` with room around it: 300 ms before, 2.3 s after. The SDKs ask
    for ``semantic_vad`` by default, whose turn ends after at most 2 s of silence when the turn
    model hears the speaker going on (it scored espeak-ng's "Please stop talking now." 0.03-0.08):
    a microphone keeps sending silence, and so does this."""
    return silence(300) + speak(text) + silence(2300)


def server_order(events: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The conversation's items in order, as the server placed them: each
    ``conversation.item.added`` goes after its ``previous_item_id`` (first when null), each
    ``conversation.item.deleted`` leaves. An id added twice, or placed after an unknown id, fails."""
    order: list[dict[str, Any]] = []
    for event in events:
        ids = [item["id"] for item in order]
        if event.get("type") == "conversation.item.added":
            item = dict(event["item"])
            previous = event.get("previous_item_id")
            assert item["id"] not in ids, f"{item['id']} added twice"
            assert previous is None or previous in ids, f"{item['id']} placed after unknown {previous}"
            order.insert(0 if previous is None else ids.index(previous) + 1, item)
        elif event.get("type") == "conversation.item.deleted":
            order.pop(ids.index(event["item_id"]))
    return order


def arrival_order(events: Iterable[Mapping[str, Any]]) -> list[str]:
    """Item ids in the order ``conversation.item.added`` arrived: the true order of a
    conversation whose client never inserts into the middle."""
    return [e["item"]["id"] for e in events if e.get("type") == "conversation.item.added"]


AUDIO_DELTA = "response.output_audio.delta"


def received(event: Mapping[str, Any], at: float) -> dict[str, Any]:
    """A server event as the suite keeps it: with ``_at``, when the client got it (seconds, any
    clock), and without the audio of an audio delta."""
    kept = {k: v for k, v in event.items() if not (event.get("type") == AUDIO_DELTA and k == "delta")}
    return {**kept, "_at": at}


def latencies(events: Iterable[Mapping[str, Any]]) -> dict[str, list[int]]:
    """Client-side figures from received events: for each end of speech, how long until reply
    audio arrived; for each response that spoke, from response.created to its first audio."""
    events = list(events)
    stopped_to_audio: list[int] = []
    created_to_audio: list[int] = []
    created: dict[str, float] = {}
    for index, event in enumerate(events):
        kind = event.get("type")
        if kind == "input_audio_buffer.speech_stopped":
            later = [e["_at"] for e in events[index:] if e.get("type") == AUDIO_DELTA]
            if later:
                stopped_to_audio.append(round((later[0] - event["_at"]) * 1000))
        elif kind == "response.created":
            created[event["response"]["id"]] = event["_at"]
        elif kind == AUDIO_DELTA and event.get("response_id") in created:
            created_to_audio.append(round((event["_at"] - created.pop(event["response_id"])) * 1000))
    return {"speech_stopped_to_audio_ms": stopped_to_audio, "created_to_audio_ms": created_to_audio}


def error_events(events: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [e for e in events if e.get("type") == "error"]


def figures(client: str, **values: Any) -> None:
    """Printed, not asserted: `pytest -s` (or the -rA report) shows them."""
    print(f"\n[conformance] {client}: " + ", ".join(f"{k}={v}" for k, v in values.items()))
