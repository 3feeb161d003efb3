"""1,000 malformed control messages over 10 connections, and malformed audio (RELIABILITY #2, #3).

Every malformed message gets exactly one ``error`` event, naming its event_id when it had one;
every connection stays open; a healthy session beside them keeps answering; the server log has
no traceback. Runs against a real hark process with the scripted (fixed-delay) engines.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hark.bench.fakes import PLUGIN_ENV
from tests.load import Session, percentile
from tests.servers import HarkProcess

CONNECTIONS = 10
MESSAGES = 1_000
HEALTHY_TEXT = "Hello there, how are you?"

SCRIPTED = {
    **PLUGIN_ENV,
    "HARK_STT_PROVIDERS": '[{"kind": "scripted"}]',
    "HARK_TTS_PROVIDERS": '[{"kind": "scripted"}]',
    "HARK_LLM_PROVIDERS": '[{"kind": "scripted"}]',
    "HARK_WORKERS_ENABLED": "false",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[HarkProcess, Path]]:
    log = tmp_path_factory.mktemp("hark-battery") / "server.log"
    with HarkProcess(env=SCRIPTED, log_path=log) as process:
        yield process, log


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def session_update(rate: Any, *, direction: str = "input", kind: str = "audio/pcm") -> dict[str, Any]:
    return {
        "type": "session.update",
        "session": {"type": "realtime", "audio": {direction: {"format": {"type": kind, "rate": rate}}}},
    }


# A case: (name, build(event_id) -> frame, whether the error names the event_id).
Case = tuple[str, Callable[[str], str | bytes], bool]


def odd(text: str) -> bytes:
    data = text.encode()
    return data if len(data) % 2 else data + b" "


def with_id(event: dict[str, Any]) -> Callable[[str], str]:
    return lambda event_id: json.dumps({**event, "event_id": event_id})


BIG = "x" * 100_000
CASES: list[Case] = [
    ("bad json: truncated", lambda e: '{"type": "session.update", "event_id": "' + e, False),
    ("bad json: garbage", lambda e: "{this is not json " + e, False),
    ("bad json: empty", lambda e: "", False),
    ("bad json: NaN-only", lambda e: "NaN", False),
    ("json array", lambda e: json.dumps([{"type": "response.create", "event_id": e}]), False),
    ("json string", lambda e: json.dumps(e), False),
    ("json null", lambda e: "null", False),
    ("no type", lambda e: json.dumps({"event_id": e}), True),
    ("type not a string", with_id({"type": 17}), True),
    ("unknown type", with_id({"type": "nope.nope"}), True),
    ("append: audio int", with_id({"type": "input_audio_buffer.append", "audio": 12}), True),
    ("append: audio missing", with_id({"type": "input_audio_buffer.append"}), True),
    ("append: audio list", with_id({"type": "input_audio_buffer.append", "audio": ["AAA="]}), True),
    ("session.update: session string", with_id({"type": "session.update", "session": "x"}), True),
    (
        "session.update: threshold 5",
        with_id(
            {
                "type": "session.update",
                "session": {"audio": {"input": {"turn_detection": {"type": "server_vad", "threshold": 5}}}},
            }
        ),
        True,
    ),
    ("response.create: response int", with_id({"type": "response.create", "response": 5}), True),
    (
        "truncate: audio_end_ms string",
        with_id({"type": "conversation.item.truncate", "item_id": "i", "audio_end_ms": "soon"}),
        True,
    ),
    (
        "truncate: negative",
        with_id({"type": "conversation.item.truncate", "item_id": "i", "audio_end_ms": -5}),
        True,
    ),
    (
        "truncate: unknown item",
        with_id({"type": "conversation.item.truncate", "item_id": "nope", "audio_end_ms": 5}),
        True,
    ),
    (
        "item.create: content not a list",
        with_id({"type": "conversation.item.create", "item": {"role": "user", "content": "hi"}}),
        True,
    ),
    (
        "item.create: bad role",
        with_id(
            {
                "type": "conversation.item.create",
                "item": {"role": "robot", "content": [{"type": "input_text", "text": "hi"}]},
            }
        ),
        True,
    ),
    (
        "item.create: output for an unknown call",
        with_id(
            {
                "type": "conversation.item.create",
                "item": {"type": "function_call_output", "call_id": "call_nope", "output": "{}"},
            }
        ),
        True,
    ),
    ("item.delete: unknown item", with_id({"type": "conversation.item.delete", "item_id": "nope"}), True),
    ("100 kB type", lambda e: json.dumps({"type": BIG, "event_id": e}), True),
    ("100 kB unknown field on commit", with_id({"type": "input_audio_buffer.commit", "x": BIG}), True),
    (
        "100 kB + 1 instructions",
        with_id({"type": "session.update", "session": {"instructions": BIG + "y"}}),
        True,
    ),
    ("100 kB event_id", lambda e: json.dumps({"type": "nope", "event_id": e + BIG}), True),
    (
        "deep nesting: 5,000 lists",
        lambda e: (
            '{"type": "session.update", "event_id": "' + e + '", "session": ' + "[" * 5000 + "]" * 5000 + "}"
        ),
        False,
    ),
    (
        "deep nesting: 40 objects",
        lambda e: (
            '{"type": "session.update", "event_id": "' + e + '", "x": ' + '{"a":' * 40 + "1" + "}" * 40 + "}"
        ),
        True,
    ),
    # Binary frames are raw PCM16: an odd number of bytes cannot be, whatever it holds.
    ("binary frame: odd length", lambda e: b"\x00\x01\x02", False),
    ("binary frame: JSON bytes, odd length", lambda e: odd(json.dumps({"type": "response.create"})), False),
    ("append: invalid base64", with_id({"type": "input_audio_buffer.append", "audio": "!!!"}), True),
    ("append: odd-length PCM16", with_id({"type": "input_audio_buffer.append", "audio": b64(b"abc")}), True),
    ("commit: empty buffer", with_id({"type": "input_audio_buffer.commit"}), True),
    ("cancel: nothing running", with_id({"type": "response.cancel"}), True),
    ("session.update: rate 7000", lambda e: json.dumps({**session_update(7000), "event_id": e}), True),
]


def expected_id(case: Case, event_id: str) -> str | None:
    name, _, names_id = case
    if not names_id:
        return None
    if name == "100 kB event_id":
        return (event_id + BIG)[:512]
    return event_id


async def battery_connection(url: str, index: int, per_connection: int) -> dict[str, Any]:
    """Send ``per_connection`` malformed messages (pipelined in bursts of 10), then a sentinel;
    check the errors one to one and in order."""
    session = await Session.open(url)
    mark = session.mark()
    sent: list[tuple[Case, str]] = []
    for n in range(per_connection):
        case = CASES[(index * per_connection + n) % len(CASES)]
        event_id = f"c{index}-m{n}"
        await session.send(case[1](event_id))
        sent.append((case, event_id))
        if n % 10 == 9:
            await asyncio.sleep(0.25)
    await session.send({"type": "input_audio_buffer.clear", "event_id": f"c{index}-sentinel"})
    await session.wait_for("input_audio_buffer.cleared", after=mark, timeout=30)
    errors = session.of("error", mark)
    outcome: dict[str, Any] = {"sent": len(sent), "errors": len(errors), "wrong_id": [], "open": True}
    for (case, event_id), error in zip(sent, errors, strict=False):
        want = expected_id(case, event_id)
        got = error["error"].get("event_id")
        if want is not None and got != want:
            outcome["wrong_id"].append((case[0], want[:40], (got or "")[:40]))
    # Still open and still serving: a valid event is answered.
    mark = session.mark()
    await session.send({"type": "session.update", "session": {"type": "realtime"}})
    await session.wait_for("session.updated", after=mark, timeout=10)
    outcome["open"] = session.closed is None
    outcome["codes"] = [e["error"]["code"] for e in errors]
    outcome["names"] = [c[0] for c, _ in sent]
    await session.close()
    return outcome


async def healthy_turns(url: str, stop: asyncio.Event | None, count: int) -> list[float]:
    session = await Session.open(url)
    times: list[float] = []
    try:
        while len(times) < count or (stop is not None and not stop.is_set()):
            times.append(await session.text_turn(HEALTHY_TEXT))
    finally:
        await session.close()
    return times


async def test_thousand_malformed_messages_over_ten_connections(server: tuple[HarkProcess, Path]) -> None:
    hark, log = server
    baseline = await healthy_turns(hark.ws_url, None, 10)

    stop = asyncio.Event()
    healthy = asyncio.create_task(healthy_turns(hark.ws_url, stop, 5))
    started = time.monotonic()
    outcomes = await asyncio.gather(
        *(battery_connection(hark.ws_url, i, MESSAGES // CONNECTIONS) for i in range(CONNECTIONS))
    )
    battery_s = time.monotonic() - started
    stop.set()
    during = await healthy

    sent = sum(o["sent"] for o in outcomes)
    errors = sum(o["errors"] for o in outcomes)
    wrong = [w for o in outcomes for w in o["wrong_id"]]
    by_case: dict[str, dict[str, int]] = {}
    for o in outcomes:
        for name, code in zip(o["names"], o["codes"], strict=False):
            by_case.setdefault(name, {}).setdefault(code, 0)
            by_case[name][code] += 1
    print(f"\n[battery] {sent} malformed messages over {CONNECTIONS} connections in {battery_s:.1f} s")
    print(
        f"[battery] error events: {errors} (per 1,000: {errors * 1000 / sent:.0f}); "
        f"wrong event_id: {len(wrong)}"
    )
    print("[battery] case -> error codes")
    for name, codes in by_case.items():
        print(f"  {name:<36} {codes}")
    p95_before, p95_during = percentile(baseline, 95), percentile(during, 95)
    print(
        f"[battery] healthy session text turn p95: {p95_before * 1000:.0f} ms alone, "
        f"{p95_during * 1000:.0f} ms during the battery ({len(during)} turns); "
        f"change {(p95_during - p95_before) * 1000:+.0f} ms"
    )
    text = log.read_text(errors="replace")
    tracebacks = text.count("Traceback")
    print(f"[battery] tracebacks in the server log: {tracebacks}")

    assert sent == MESSAGES
    assert all(o["errors"] == o["sent"] for o in outcomes), [(o["sent"], o["errors"]) for o in outcomes]
    assert not wrong, wrong[:10]
    assert all(o["open"] for o in outcomes)
    assert during, "the healthy session stopped answering"
    assert tracebacks == 0
    assert hark.process is not None and hark.process.poll() is None


# -- malformed audio (RELIABILITY #3) -----------------------------------------------------------

# (name, event, expected error code or None for "accepted, no event")
AUDIO_CASES: list[tuple[str, dict[str, Any], str | None]] = [
    (
        "odd-length PCM16 (3 bytes)",
        {"type": "input_audio_buffer.append", "audio": b64(b"abc")},
        "invalid_value",
    ),
    (
        "odd-length PCM16 (9,601 bytes)",
        {"type": "input_audio_buffer.append", "audio": b64(bytes(9601))},
        "invalid_value",
    ),
    ("empty append", {"type": "input_audio_buffer.append", "audio": ""}, None),
    ("one sample", {"type": "input_audio_buffer.append", "audio": b64(b"\x01\x00")}, None),
    ("invalid base64 '!!!'", {"type": "input_audio_buffer.append", "audio": "!!!"}, "invalid_value"),
    ("base64 with bad padding", {"type": "input_audio_buffer.append", "audio": "AAA"}, "invalid_value"),
    ("base64 non-ASCII", {"type": "input_audio_buffer.append", "audio": "AAAA\u00e9"}, "invalid_value"),
    ("audio null", {"type": "input_audio_buffer.append", "audio": None}, "invalid_value"),
    ("input rate -1", session_update(-1), "unsupported_audio_format"),
    ("input rate 7000", session_update(7000), "unsupported_audio_format"),
    ("input rate 10**9", session_update(10**9), "unsupported_audio_format"),
    ("input rate 10**30", session_update(10**30), "unsupported_audio_format"),
    ("input rate 24000.5", session_update(24000.5), "invalid_value"),
    ("input rate 'fast'", session_update("fast"), "invalid_value"),
    ("output rate -1", session_update(-1, direction="output"), "unsupported_audio_format"),
    ("output rate 10**9", session_update(10**9, direction="output"), "unsupported_audio_format"),
    ("input format audio/pcmu", session_update(None, kind="audio/pcmu"), "unsupported_audio_format"),
    ("input format audio/mp3", session_update(None, kind="audio/mp3"), "invalid_value"),
]
RATE_ZERO_CASES = [
    ("input rate 0", session_update(0)),
    ("output rate 0", session_update(0, direction="output")),
]


async def outcome_of(session: Session, event: dict[str, Any], event_id: str) -> str | None:
    """The error code the event got, or None when it was accepted without an error."""
    mark = session.mark()
    await session.send({**event, "event_id": event_id})
    await session.send({"type": "input_audio_buffer.clear", "event_id": event_id + "-sentinel"})
    await session.wait_for("input_audio_buffer.cleared", after=mark, timeout=10)
    errors = session.of("error", mark)
    assert len(errors) <= 1, errors
    if not errors:
        return None
    assert errors[0]["error"]["event_id"] == event_id
    assert errors[0]["error"]["message"]
    return str(errors[0]["error"]["code"])


async def test_malformed_audio_cases(server: tuple[HarkProcess, Path]) -> None:
    hark, log = server
    session = await Session.open(hark.ws_url)
    rows = []
    for index, (name, event, expected) in enumerate(AUDIO_CASES):
        got = await outcome_of(session, event, f"a{index}")
        rows.append((name, expected, got))
    print("\n[audio] case                            expected                  got")
    for name, expected, got in rows:
        mark = "ok " if expected == got else "BAD"
        print(f"  {mark} {name:<30} {expected or 'accepted':<25} {got or 'accepted'}")
    # Still a working session afterwards.
    await session.text_turn(HEALTHY_TEXT)
    assert session.closed is None
    await session.close()
    assert [(n, g) for n, _, g in rows] == [(n, e) for n, _, e in rows]
    assert "Traceback" not in log.read_text(errors="replace")
    assert hark.process is not None and hark.process.poll() is None


@pytest.mark.parametrize(("name", "event"), RATE_ZERO_CASES, ids=[n for n, _ in RATE_ZERO_CASES])
async def test_rate_zero_is_refused(
    server: tuple[HarkProcess, Path], name: str, event: dict[str, Any]
) -> None:
    hark, _ = server
    session = await Session.open(hark.ws_url)
    try:
        got = await outcome_of(session, event, "z0")
        print(f"\n[audio] {name}: {got or 'accepted (session.updated)'}")
        assert got in ("unsupported_audio_format", "invalid_value")
    finally:
        await session.close()
