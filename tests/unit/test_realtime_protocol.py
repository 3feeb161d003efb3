"""Tests for parsing OpenAI Realtime client events (hark.transports.realtime_protocol)."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from hark.transports.realtime_protocol import (
    KNOWN_TYPES,
    MAX_DEPTH,
    MAX_EVENT_CHARS,
    InputAudioAppend,
    InputAudioClear,
    InputAudioCommit,
    ItemCreate,
    ItemTruncate,
    OutputAudioClear,
    ProtocolError,
    ResponseCancel,
    ResponseCreate,
    SessionUpdate,
    error_event,
    parse_client_event,
)


def parse(event: dict[str, Any]) -> Any:
    return parse_client_event(json.dumps(event))


def error_of(text: str) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        parse_client_event(text)
    return info.value


def nested(levels: int, leaf: Any) -> Any:
    """``levels`` lists around ``leaf``, built without recursion."""
    value = leaf
    for _ in range(levels):
        value = [value]
    return value


# -- every supported event ---------------------------------------------------------------------


def test_known_types() -> None:
    assert (
        frozenset(
            {
                "session.update",
                "input_audio_buffer.append",
                "input_audio_buffer.commit",
                "input_audio_buffer.clear",
                "response.create",
                "response.cancel",
                "output_audio_buffer.clear",
                "conversation.item.truncate",
                "conversation.item.create",
                "conversation.item.retrieve",
                "conversation.item.delete",
                "hark.resume",
            }
        )
        == KNOWN_TYPES
    )


@pytest.mark.parametrize(
    ("event", "model"),
    [
        ({"type": "session.update", "session": {}}, SessionUpdate),
        ({"type": "input_audio_buffer.append", "audio": "AAA="}, InputAudioAppend),
        ({"type": "input_audio_buffer.commit"}, InputAudioCommit),
        ({"type": "input_audio_buffer.clear"}, InputAudioClear),
        ({"type": "response.create"}, ResponseCreate),
        ({"type": "response.cancel"}, ResponseCancel),
        ({"type": "output_audio_buffer.clear"}, OutputAudioClear),
        ({"type": "conversation.item.truncate", "item_id": "it", "audio_end_ms": 0}, ItemTruncate),
        (
            {
                "type": "conversation.item.create",
                "item": {"role": "user", "content": [{"type": "input_text", "text": "hi"}]},
            },
            ItemCreate,
        ),
    ],
)
def test_each_supported_event_parses_into_its_model(event: dict[str, Any], model: type) -> None:
    parsed = parse({**event, "event_id": "evt_1"})
    assert type(parsed) is model
    assert parsed.type == event["type"]
    assert parsed.event_id == "evt_1"
    without_id = parse(event)
    assert type(without_id) is model
    assert without_id.event_id is None


def test_session_update_fields() -> None:
    parsed = parse(
        {
            "type": "session.update",
            "session": {
                "type": "realtime",
                "instructions": "Be brief.",
                "output_modalities": ["audio", "text"],
                "audio": {
                    "input": {
                        "format": {"type": "audio/pcm", "rate": 24000},
                        "turn_detection": {
                            "type": "server_vad",
                            "threshold": 0.6,
                            "prefix_padding_ms": 200,
                            "silence_duration_ms": 700,
                            "create_response": False,
                            "interrupt_response": False,
                        },
                    },
                    "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "alloy"},
                },
                "tools": [],
                "tracing": "auto",
            },
        }
    )
    assert isinstance(parsed, SessionUpdate)
    session = parsed.session
    assert session.instructions == "Be brief."
    assert session.output_modalities == ["audio", "text"]
    assert session.audio is not None and session.audio.input is not None and session.audio.output is not None
    assert session.audio.input.format is not None
    assert (session.audio.input.format.type, session.audio.input.format.rate) == ("audio/pcm", 24000)
    detection = session.audio.input.turn_detection
    assert detection is not None
    assert (detection.type, detection.threshold, detection.prefix_padding_ms) == ("server_vad", 0.6, 200)
    assert (detection.silence_duration_ms, detection.create_response, detection.interrupt_response) == (
        700,
        False,
        False,
    )
    assert session.audio.output.voice == "alloy"
    assert session.tools == []
    # Unknown fields are tolerated (extra="allow").
    assert session.model_extra == {"tracing": "auto"}


def test_session_update_defaults_and_null_turn_detection() -> None:
    parsed = parse({"type": "session.update", "session": {"audio": {"input": {}}}})
    assert isinstance(parsed, SessionUpdate)
    assert parsed.session.type == "realtime"
    assert parsed.session.audio is not None and parsed.session.audio.input is not None
    detection = parsed.session.audio.input.turn_detection
    assert detection is not None
    assert (detection.type, detection.threshold, detection.create_response) == ("server_vad", None, True)
    off = parse({"type": "session.update", "session": {"audio": {"input": {"turn_detection": None}}}})
    assert isinstance(off, SessionUpdate)
    assert off.session.audio is not None and off.session.audio.input is not None
    assert off.session.audio.input.turn_detection is None


def test_response_create_and_cancel_fields() -> None:
    created = parse({"type": "response.create", "response": {"instructions": "Say hi."}})
    assert isinstance(created, ResponseCreate)
    assert created.response is not None and created.response.instructions == "Say hi."
    cancelled = parse({"type": "response.cancel", "response_id": "resp_1"})
    assert isinstance(cancelled, ResponseCancel)
    assert cancelled.response_id == "resp_1"


def test_truncate_and_item_create_fields() -> None:
    truncate = parse(
        {"type": "conversation.item.truncate", "item_id": "item_9", "content_index": 0, "audio_end_ms": 1500}
    )
    assert isinstance(truncate, ItemTruncate)
    assert (truncate.item_id, truncate.content_index, truncate.audio_end_ms) == ("item_9", 0, 1500)
    create = parse(
        {
            "type": "conversation.item.create",
            "previous_item_id": "item_8",
            "item": {
                "id": "item_10",
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "Hello"}, {"type": "text", "text": "again"}],
            },
        }
    )
    assert isinstance(create, ItemCreate)
    assert create.previous_item_id == "item_8"
    assert (create.item.id, create.item.role) == ("item_10", "assistant")
    assert [(part.type, part.text) for part in create.item.content] == [
        ("output_text", "Hello"),
        ("text", "again"),
    ]


# -- malformed input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text", ["", "   ", "nope", "{", '{"type": "response.create"', "{'type': 'x'}", "[1,]", "\x00"]
)
def test_invalid_json(text: str) -> None:
    error = error_of(text)
    assert error.code == "invalid_json"
    assert error.type == "invalid_request_error"
    assert error.message.startswith("event is not valid JSON: ")
    assert error.event_id is None


@pytest.mark.parametrize("text", ["[]", "[1, 2]", "1", "1.5", '"session.update"', "null", "true"])
def test_non_object_json(text: str) -> None:
    error = error_of(text)
    assert error.code == "invalid_json"
    assert error.message == "event must be a JSON object"


@pytest.mark.parametrize(
    "event",
    [
        {},
        {"event_id": "e7"},
        {"event_id": "e7", "type": None},
        {"event_id": "e7", "type": 3},
        {"type": ["x"]},
    ],
)
def test_missing_type(event: dict[str, Any]) -> None:
    error = error_of(json.dumps(event))
    assert error.code == "missing_required_parameter"
    assert error.param == "type"
    assert error.event_id == event.get("event_id")


@pytest.mark.parametrize("kind", ["response.created", "session.updated", "", "SESSION.UPDATE", "x" * 1000])
def test_unknown_type(kind: str) -> None:
    error = error_of(json.dumps({"type": kind, "event_id": "e8"}))
    assert error.code == "unknown_event_type"
    assert error.param == "type"
    assert error.event_id == "e8"
    assert error.message == f"unsupported event type {kind[:80]!r}"


@pytest.mark.parametrize(
    ("event", "param"),
    [
        ({"type": "input_audio_buffer.append", "audio": 5}, "audio"),
        ({"type": "input_audio_buffer.append", "audio": None}, "audio"),
        ({"type": "input_audio_buffer.append", "audio": ["AAA="]}, "audio"),
        ({"type": "input_audio_buffer.append"}, "audio"),
        ({"type": "conversation.item.truncate", "item_id": "i", "audio_end_ms": -1}, "audio_end_ms"),
        ({"type": "conversation.item.truncate", "item_id": "i", "audio_end_ms": 1.5}, "audio_end_ms"),
        ({"type": "conversation.item.truncate", "item_id": "i"}, "audio_end_ms"),
        ({"type": "conversation.item.truncate", "audio_end_ms": 0}, "item_id"),
        (
            {"type": "conversation.item.truncate", "item_id": "i", "audio_end_ms": 0, "content_index": -1},
            "content_index",
        ),
        ({"type": "conversation.item.truncate", "item_id": "i" * 257, "audio_end_ms": 0}, "item_id"),
        ({"type": "session.update"}, "session"),
        ({"type": "session.update", "session": None}, "session"),
        ({"type": "session.update", "session": "realtime"}, "session"),
        ({"type": "session.update", "session": {"type": "transcription"}}, "session.type"),
        (
            {"type": "session.update", "session": {"output_modalities": ["video"]}},
            "session.output_modalities.0",
        ),
        (
            {
                "type": "session.update",
                "session": {"audio": {"input": {"turn_detection": {"threshold": 1.0}}}},
            },
            "session.audio.input.turn_detection.threshold",
        ),
        (
            {"type": "session.update", "session": {"audio": {"input": {"format": {"type": "audio/mp3"}}}}},
            "session.audio.input.format.type",
        ),
        ({"type": "response.cancel", "response_id": 7}, "response_id"),
        ({"type": "response.create", "response": {"instructions": 7}}, "response.instructions"),
        ({"type": "conversation.item.create", "item": {"role": "user", "content": []}}, "item.content"),
        (
            {
                "type": "conversation.item.create",
                "item": {"role": "tool", "content": [{"type": "text", "text": "x"}]},
            },
            "item.role",
        ),
        (
            {"type": "conversation.item.create", "item": {"role": "user", "content": [{"type": "image"}]}},
            "item.content.0.type",
        ),
        ({"type": "input_audio_buffer.commit", "event_id": 5}, "event_id"),
    ],
)
def test_wrong_field_types(event: dict[str, Any], param: str) -> None:
    error = error_of(json.dumps(event))
    assert error.code == "invalid_value"
    assert error.type == "invalid_request_error"
    assert error.param == param
    assert error.message.startswith(f"invalid {event['type']}: {param}: ")


def test_validation_error_carries_event_id() -> None:
    error = error_of(json.dumps({"type": "input_audio_buffer.append", "audio": 5, "event_id": "evt_42"}))
    assert (error.code, error.param, error.event_id) == ("invalid_value", "audio", "evt_42")
    error = error_of(
        json.dumps(
            {"type": "conversation.item.truncate", "item_id": "i", "audio_end_ms": -1, "event_id": "e2"}
        )
    )
    assert (error.code, error.param, error.event_id) == ("invalid_value", "audio_end_ms", "e2")


def test_non_string_event_id_is_not_echoed() -> None:
    error = error_of(json.dumps({"type": "nope", "event_id": 12}))
    assert error.code == "unknown_event_type"
    assert error.event_id is None


@pytest.mark.parametrize(
    ("event", "param"),
    [
        ({"type": "session.update", "session": {"instructions": "a" * 100_001}}, "session.instructions"),
        ({"type": "response.create", "response": {"instructions": "a" * 100_001}}, "response.instructions"),
        (
            {
                "type": "conversation.item.create",
                "item": {"role": "user", "content": [{"type": "input_text", "text": "a" * 100_001}]},
            },
            "item.content.0.text",
        ),
    ],
)
def test_long_strings_are_limited(event: dict[str, Any], param: str) -> None:
    error = error_of(json.dumps({**event, "event_id": "big"}))
    assert (error.code, error.param, error.event_id) == ("invalid_value", param, "big")
    assert "at most 100000 characters" in error.message


def test_strings_at_the_limit_are_accepted() -> None:
    parsed = parse({"type": "session.update", "session": {"instructions": "a" * 100_000}})
    assert isinstance(parsed, SessionUpdate)
    assert parsed.session.instructions == "a" * 100_000


def test_too_many_content_parts() -> None:
    parts = [{"type": "input_text", "text": "x"}] * 65
    error = error_of(
        json.dumps({"type": "conversation.item.create", "item": {"role": "user", "content": parts}})
    )
    assert error.param == "item.content"
    ok = parse({"type": "conversation.item.create", "item": {"role": "user", "content": parts[:64]}})
    assert isinstance(ok, ItemCreate)
    assert len(ok.item.content) == 64


def test_event_larger_than_the_limit() -> None:
    text = json.dumps({"type": "input_audio_buffer.append", "audio": "A" * MAX_EVENT_CHARS})
    error = error_of(text)
    assert error.code == "event_too_large"
    assert error.message == f"event larger than {MAX_EVENT_CHARS} characters"


# -- nesting -----------------------------------------------------------------------------------


def test_nesting_at_the_limit_is_accepted() -> None:
    # The event object is level 1; 31 lists inside it make 32 levels of nesting.
    parsed = parse({"type": "input_audio_buffer.commit", "x": nested(30, [])})
    assert isinstance(parsed, InputAudioCommit)
    assert MAX_DEPTH == 32


@pytest.mark.parametrize("levels", [31, 40, 100, 500])
def test_nesting_deeper_than_max_depth_is_refused(levels: int) -> None:
    text = json.dumps({"type": "input_audio_buffer.commit", "event_id": "deep", "x": nested(levels, [])})
    error = error_of(text)
    assert error.code == "invalid_value"
    assert error.event_id == "deep"
    assert error.message == f"event nests deeper than {MAX_DEPTH} levels"


def test_deep_objects_are_refused_too() -> None:
    inner: Any = {}
    for _ in range(40):
        inner = {"a": inner}
    error = error_of(json.dumps({"type": "session.update", "session": inner}))
    assert error.message == f"event nests deeper than {MAX_DEPTH} levels"


@pytest.mark.parametrize(
    "text",
    [
        "[" * 10_000 + "]" * 10_000,
        "[" * 100_000,
        '{"type": "session.update", "session": ' + "[" * 10_000 + "]" * 10_000 + "}",
        '{"type": "input_audio_buffer.commit", "x": ' + '{"a":' * 10_000 + "1" + "}" * 10_000 + "}",
    ],
    ids=["bare-array", "unclosed", "in-session", "objects"],
)
def test_ten_thousand_levels_never_raise_recursion_error(text: str) -> None:
    error = error_of(text)  # a RecursionError would escape pytest.raises(ProtocolError)
    assert error.code in {"invalid_json", "invalid_value"}


def test_deep_nesting_within_the_json_limit_is_caught_by_the_depth_check() -> None:
    text = '{"type": "input_audio_buffer.commit", "event_id": "d", "x": ' + "[" * 600 + "]" * 600 + "}"
    error = error_of(text)
    assert (error.code, error.event_id) == ("invalid_value", "d")
    assert error.message == f"event nests deeper than {MAX_DEPTH} levels"


# -- event_id ----------------------------------------------------------------------------------


def test_event_id_at_512_chars_is_accepted() -> None:
    parsed = parse({"type": "input_audio_buffer.commit", "event_id": "e" * 512})
    assert parsed.event_id == "e" * 512


@pytest.mark.parametrize(
    "event",
    [
        {"type": "input_audio_buffer.commit"},
        {"type": "not.a.type"},
        {"type": "input_audio_buffer.append", "audio": 1},
    ],
)
def test_event_id_over_512_chars_is_truncated_in_the_error(event: dict[str, Any]) -> None:
    long_id = "".join(chr(ord("a") + i % 26) for i in range(2000))
    error = error_of(json.dumps({**event, "event_id": long_id}))
    assert error.event_id == long_id[:512]
    assert len(error.event_id) == 512


# -- error_event -------------------------------------------------------------------------------


def test_error_event_shape() -> None:
    error = error_of(json.dumps({"type": "input_audio_buffer.append", "audio": 5, "event_id": "evt_3"}))
    assert error_event(error) == {
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "code": "invalid_value",
            "message": error.message,
            "param": "audio",
            "event_id": "evt_3",
        },
    }
    json.dumps(error_event(error))  # serialisable


def test_protocol_error_defaults() -> None:
    error = ProtocolError("bad")
    assert (str(error), error.message, error.code, error.type, error.event_id, error.param) == (
        "bad",
        "bad",
        "invalid_value",
        "invalid_request_error",
        None,
        None,
    )


# -- fuzz (seeded; hypothesis is not installed) ------------------------------------------------

FIELD_NAMES = [
    "type",
    "event_id",
    "audio",
    "session",
    "response",
    "response_id",
    "item",
    "item_id",
    "audio_end_ms",
    "content_index",
    "content",
    "role",
    "text",
    "instructions",
    "input",
    "output",
    "format",
    "turn_detection",
    "threshold",
    "rate",
    "__class__",
    "model_config",
    "",
]


def random_scalar(rng: random.Random) -> Any:
    choice = rng.randrange(10)
    if choice == 0:
        return None
    if choice == 1:
        return rng.choice([True, False])
    if choice == 2:
        return rng.randint(-(2**70), 2**70)
    if choice == 3:
        return rng.choice([0, -1, 1, 64, 5000, 1.5, -0.0, 1e308, 0.5])
    if choice == 4:
        return rng.uniform(-1e6, 1e6)
    if choice == 5:
        return rng.choice(sorted(KNOWN_TYPES))
    if choice == 6:
        return rng.choice(["audio/pcm", "user", "assistant", "input_text", "server_vad", "realtime", "AAA="])
    if choice == 7:
        return "x" * rng.choice([0, 1, 256, 257, 512, 513])
    return "".join(chr(rng.randrange(0x20, 0x2FFF)) for _ in range(rng.randrange(12)))


def random_value(rng: random.Random, depth: int = 0) -> Any:
    if depth > 6 or rng.random() < 0.45:
        return random_scalar(rng)
    if rng.random() < 0.5:
        return [random_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {rng.choice(FIELD_NAMES): random_value(rng, depth + 1) for _ in range(rng.randrange(5))}


def random_event(rng: random.Random) -> Any:
    if rng.random() < 0.1:
        return random_value(rng)
    event = {rng.choice(FIELD_NAMES): random_value(rng) for _ in range(rng.randrange(5))}
    if rng.random() < 0.85:
        event["type"] = rng.choice(sorted(KNOWN_TYPES)) if rng.random() < 0.9 else random_scalar(rng)
    return event


def mutate(rng: random.Random, text: str) -> str:
    chars = list(text)
    for _ in range(rng.randrange(1, 4)):
        op = rng.randrange(3)
        position = rng.randrange(len(chars) + 1)
        if op == 0 and chars:
            del chars[min(position, len(chars) - 1)]
        elif op == 1:
            chars.insert(position, rng.choice('{}[]",:0123456789.-eEtrufalsn\\ \x00\ud800é'))
        else:
            chars = chars[:position]
    return "".join(chars)


def outcome(text: str) -> str:
    """'ok' or 'error'; anything but a ProtocolError propagates and fails the test."""
    try:
        parse_client_event(text)
    except ProtocolError as error:
        assert isinstance(error.code, str) and error.code
        assert isinstance(error.message, str) and error.message
        assert error.event_id is None or (isinstance(error.event_id, str) and len(error.event_id) <= 512)
        return "error"
    return "ok"


@pytest.mark.parametrize("seed", range(8))
def test_fuzz_structured_events_parse_or_raise_protocol_error(seed: int) -> None:
    rng = random.Random(seed)
    results = {"ok": 0, "error": 0}
    for _ in range(400):
        results[outcome(json.dumps(random_event(rng)))] += 1
    assert results["ok"] + results["error"] == 400
    assert results["error"] > 0


@pytest.mark.parametrize("seed", range(4))
def test_fuzz_mutated_valid_events(seed: int) -> None:
    rng = random.Random(1000 + seed)
    valid = [
        '{"type": "session.update", "session": {"instructions": "hi", "audio": {"input": {}}}}',
        '{"type": "input_audio_buffer.append", "audio": "AAA=", "event_id": "e1"}',
        '{"type": "conversation.item.truncate", "item_id": "i", "audio_end_ms": 10}',
        '{"type": "conversation.item.create", '
        '"item": {"role": "user", "content": [{"type": "text", "text": "a"}]}}',
        '{"type": "response.create", "response": {"instructions": "x"}}',
    ]
    for text in valid:
        assert outcome(text) == "ok"
    for _ in range(500):
        outcome(mutate(rng, rng.choice(valid)))


@pytest.mark.parametrize("seed", range(4))
def test_fuzz_arbitrary_text(seed: int) -> None:
    rng = random.Random(2000 + seed)
    alphabet = '{}[]",:0123456789.-+eEtrufalsnNI\\/ \t\n\x00abc\ud800\udfff€'
    for _ in range(500):
        length = rng.randrange(60)
        if rng.random() < 0.5:
            text = "".join(rng.choice(alphabet) for _ in range(length))
        else:
            text = "".join(chr(rng.randrange(0x110000)) for _ in range(length))
        assert outcome(text) == "error"  # random text is never a valid event


def test_fuzz_deep_random_nesting() -> None:
    rng = random.Random(7)
    for _ in range(50):
        opens = "".join(rng.choice(["[", '{"a":']) for _ in range(rng.randrange(1, 3000)))
        closes = "".join("]" if c == "[" else "}" for c in reversed(opens.replace('{"a":', "{")))
        for text in (opens + "1" + closes, '{"type": "response.create", "x": ' + opens + "1" + closes + "}"):
            assert outcome(text) == "error"
