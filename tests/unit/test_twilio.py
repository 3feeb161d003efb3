"""The pure parts of the Twilio adapter: G.711 μ-law, the request signature, the wire messages,
the mark ledger and the keypad collector."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from hark.errors import ConfigError, EngineError
from hark.transports.twilio import dtmf, mulaw, signature
from hark.transports.twilio import protocol as tp
from hark.transports.twilio.greeting import PhraseCache, sentences
from hark.transports.twilio.playback import MarkLedger
from hark.transports.twilio.routes import PhoneLine, twiml_connect
from tests.fakes import FakeTTS

# -- μ-law: a per-sample reference written straight from the G.711 formula -----------------


def reference_decode(code: int) -> int:
    code = ~code & 0xFF
    sign, exponent, mantissa = code & 0x80, (code >> 4) & 0x07, code & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return -magnitude if sign else magnitude


def reference_encode(sample: int) -> int:
    sign = 0x80 if sample < 0 else 0
    magnitude = min(abs(sample), 32635) + 0x84
    exponent = 7
    for exp in range(8):  # the segment holding the magnitude's highest bit
        if magnitude < (0x100 << exp):
            exponent = exp
            break
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def test_decode_table_matches_the_g711_formula_for_every_code() -> None:
    expected = [reference_decode(code) for code in range(256)]
    assert mulaw.DECODE.tolist() == expected
    assert mulaw.decode(bytes(range(256))) == np.array(expected, dtype="<i2").tobytes()
    # Well-known points: 0xFF and 0x7F are the two zeros, 0x00 / 0x80 the extremes.
    assert expected[0xFF] == 0 and expected[0x7F] == 0
    assert expected[0x00] == -32124 and expected[0x80] == 32124


def test_encode_table_matches_the_g711_formula_for_every_sample() -> None:
    samples = np.arange(-32768, 32768, dtype=np.int32)
    expected = bytes(reference_encode(int(s)) for s in samples)
    assert mulaw.encode(samples.astype("<i2").tobytes()) == expected


def test_round_trip_is_exact_on_codes_and_within_half_a_step_on_samples() -> None:
    codes = bytes(range(256))
    # Every code survives decode → encode, except that negative zero (0x7F) becomes 0xFF.
    again = mulaw.encode(mulaw.decode(codes))
    assert [a for a, b in zip(again, codes, strict=True) if a != b] == [0xFF]
    samples = np.linspace(-32000, 32000, 10_001).astype("<i2")
    decoded = np.frombuffer(mulaw.decode(mulaw.encode(samples.tobytes())), dtype="<i2").astype(np.int32)
    error = np.abs(decoded - samples.astype(np.int32))
    # The step doubles with each segment: at most half of 1024 in the loudest one.
    assert error.max() <= 512
    assert np.all(error <= np.maximum(4, np.abs(samples.astype(np.int32)) // 16))


def test_encode_ignores_an_odd_trailing_byte_and_frames_are_20_ms() -> None:
    assert mulaw.encode(b"\x00\x00\x01") == b"\xff"
    frames = mulaw.frames(bytes(400))
    assert [len(f) for f in frames] == [160, 160, 80]


# -- X-Twilio-Signature ---------------------------------------------------------------------

DOC_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
DOC_PARAMS = [
    ("CallSid", "CA1234567890ABCDE"),
    ("Caller", "+12349013030"),
    ("Digits", "1234"),
    ("From", "+12349013030"),
    ("To", "+18005551212"),
]
DOC_SIGNATURE = "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
"""The worked example of Twilio's "Webhooks security" guide (auth token 12345)."""


def test_signature_matches_twilios_documented_example() -> None:
    assert signature.compute("12345", DOC_URL, DOC_PARAMS) == DOC_SIGNATURE
    assert signature.compute("12345", DOC_URL, list(reversed(DOC_PARAMS))) == DOC_SIGNATURE
    assert signature.valid("12345", DOC_URL, DOC_PARAMS, DOC_SIGNATURE)


@pytest.mark.parametrize(
    ("token", "url", "params", "sig"),
    [
        ("12346", DOC_URL, DOC_PARAMS, DOC_SIGNATURE),
        ("12345", DOC_URL.replace("bar=2", "bar=3"), DOC_PARAMS, DOC_SIGNATURE),
        ("12345", "https://evil.example/myapp.php?foo=1&bar=2", DOC_PARAMS, DOC_SIGNATURE),
        ("12345", DOC_URL, [*DOC_PARAMS[:2], ("Digits", "9999"), *DOC_PARAMS[3:]], DOC_SIGNATURE),
        ("12345", DOC_URL, [*DOC_PARAMS, ("Extra", "")], DOC_SIGNATURE),
        ("12345", DOC_URL, DOC_PARAMS, DOC_SIGNATURE[:-2]),
        ("12345", DOC_URL, DOC_PARAMS, ""),
        ("12345", DOC_URL, DOC_PARAMS, None),
        ("12345", DOC_URL, DOC_PARAMS, "ü" * 28),
    ],
)
def test_forged_or_altered_requests_fail(
    token: str, url: str, params: list[tuple[str, str]], sig: str | None
) -> None:
    assert not signature.valid(token, url, params, sig)


def test_signature_accepts_the_url_with_or_without_the_default_port() -> None:
    with_port = "https://mycompany.com:443/myapp.php?foo=1&bar=2"
    signed_with_port = signature.compute("12345", with_port, DOC_PARAMS)
    assert signature.valid("12345", DOC_URL, DOC_PARAMS, signed_with_port)
    assert signature.valid("12345", with_port, DOC_PARAMS, DOC_SIGNATURE)
    # Another port is another URL.
    other = signature.compute("12345", "https://mycompany.com:8443/myapp.php?foo=1&bar=2", DOC_PARAMS)
    assert not signature.valid("12345", DOC_URL, DOC_PARAMS, other)


def test_repeated_parameters_each_count_sorted() -> None:
    one_order = signature.compute("k", "https://a.example/x", [("A", "2"), ("A", "1"), ("B", "x")])
    other = signature.compute("k", "https://a.example/x", [("B", "x"), ("A", "1"), ("A", "2")])
    assert one_order == other
    assert one_order != signature.compute("k", "https://a.example/x", [("A", "1"), ("B", "x")])


# -- wire messages ----------------------------------------------------------------------------

START = {
    "event": "start",
    "sequenceNumber": "1",
    "start": {
        "accountSid": "AC" + "0" * 32,
        "streamSid": "MZ" + "1" * 32,
        "callSid": "CA" + "2" * 32,
        "tracks": ["inbound"],
        "customParameters": {"token": "abc"},
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
    },
    "streamSid": "MZ" + "1" * 32,
}


def test_twilios_documented_messages_parse() -> None:
    assert isinstance(
        tp.parse('{"event": "connected", "protocol": "Call", "version": "1.0.0"}'), tp.Connected
    )
    start = tp.parse(json.dumps(START))
    assert isinstance(start, tp.Start)
    assert start.start.custom_parameters == {"token": "abc"}
    assert start.start.media_format.sample_rate == 8000
    payload = base64.b64encode(b"\xff" * 160).decode()
    media = tp.parse(
        json.dumps(
            {
                "event": "media",
                "sequenceNumber": "3",
                "media": {"track": "inbound", "chunk": "1", "timestamp": "5", "payload": payload},
                "streamSid": "MZ1",
            }
        )
    )
    assert isinstance(media, tp.Media) and media.audio() == b"\xff" * 160
    mark = tp.parse(
        '{"event": "mark", "sequenceNumber": "4", "streamSid": "MZ1", "mark": {"name": "hark-1"}}'
    )
    assert isinstance(mark, tp.Mark) and mark.mark.name == "hark-1"
    digit = tp.parse(
        '{"event": "dtmf", "streamSid": "MZ1", "sequenceNumber": "5", '
        '"dtmf": {"track": "inbound_track", "digit": "1"}}'
    )
    assert isinstance(digit, tp.Dtmf) and digit.dtmf.digit == "1"
    stop = tp.parse(
        '{"event": "stop", "sequenceNumber": "5", '
        '"stop": {"accountSid": "AC1", "callSid": "CA1"}, "streamSid": "MZ1"}'
    )
    assert isinstance(stop, tp.Stop)


def test_messages_to_twilio_have_its_documented_shape() -> None:
    assert tp.media("MZ1", b"\x00\xff") == {
        "event": "media",
        "streamSid": "MZ1",
        "media": {"payload": "AP8="},
    }
    assert tp.mark("MZ1", "hark-7") == {
        "event": "mark",
        "streamSid": "MZ1",
        "mark": {"name": "hark-7"},
    }
    assert tp.clear("MZ1") == {"event": "clear", "streamSid": "MZ1"}


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("not json", "malformed_json"),
        ("[1, 2]", "invalid_message"),
        ('"start"', "invalid_message"),
        ("{}", "unknown_event"),
        ('{"event": "hangup"}', "unknown_event"),
        ('{"event": 5}', "unknown_event"),
        ('{"event": "start"}', "invalid_message"),
        ('{"event": "start", "start": {"streamSid": "MZ1"}}', "invalid_message"),
        ('{"event": "media", "media": {"payload": 12}}', "invalid_message"),
        ('{"event": "mark", "mark": {"name": "' + "x" * 300 + '"}}', "invalid_message"),
        ('{"event": "dtmf", "dtmf": {"digit": "12"}}', "invalid_message"),
        ('{"event": "media", "media": {"payload": "' + "A" * 300_000 + '"}}', "message_too_large"),
        ("[" * 100_000 + "]" * 100_000, "malformed_json"),
    ],
)
def test_bad_messages_raise_the_protocol_error_only(text: str, code: str) -> None:
    with pytest.raises(tp.TwilioProtocolError) as caught:
        tp.parse(text)
    assert caught.value.code == code


def test_invalid_base64_audio_is_a_protocol_error() -> None:
    media = tp.parse('{"event": "media", "media": {"payload": "not*base64"}}')
    assert isinstance(media, tp.Media)
    with pytest.raises(tp.TwilioProtocolError) as caught:
        media.audio()
    assert caught.value.code == "invalid_audio"


# -- marks → heard audio -------------------------------------------------------------------


def test_echoed_marks_say_how_much_of_each_item_was_heard() -> None:
    ledger = MarkLedger()
    first = ledger.sent("item_a", 100)
    second = ledger.sent("item_a", 200)
    third = ledger.sent("item_a", 300)
    assert ledger.unplayed and ledger.heard_ms("item_a") == 0
    assert ledger.played(second) is not None  # the first played before it
    assert ledger.heard_ms("item_a") == 200
    assert ledger.played(first) is None  # already counted
    assert ledger.unplayed_items() == ["item_a"]
    assert ledger.played(third) is not None
    assert not ledger.unplayed and ledger.heard_ms("item_a") == 300


def test_marks_echoed_after_a_clear_do_not_count_as_heard() -> None:
    ledger = MarkLedger()
    played = ledger.sent("item_a", 100)
    cut = ledger.sent("item_a", 200)
    ledger.sent("item_b", 100)
    ledger.played(played)
    assert ledger.cleared() == ["item_a", "item_b"]
    assert ledger.played(cut) is None
    assert ledger.played("not-ours") is None
    assert ledger.heard_ms("item_a") == 100 and ledger.heard_ms("item_b") == 0
    assert not ledger.unplayed


# -- keypad ---------------------------------------------------------------------------------


def test_keypad_digits_make_one_entry_per_pause_or_hash() -> None:
    keys = dtmf.DtmfCollector(gap_ms=1000)
    assert keys.push("4", 0.0) is None
    assert keys.push("2", 0.5) is None
    assert keys.due(1.2) is None  # 0.7 s after the last digit
    assert keys.due(1.5) == "42"
    assert keys.due(3.0) is None
    assert keys.push("1", 4.0) is None
    assert keys.push("#", 4.1) == "1"
    assert keys.push("#", 4.2) is None  # nothing before it
    assert keys.received == 5
    assert dtmf.as_text("42") == "[keypad] 42"


# -- the greeting's audio, kept ---------------------------------------------------------------


async def collect(tts: PhraseCache, text: str) -> bytes:
    return b"".join([piece async for piece in tts.synthesize(text)])


async def test_the_greeting_is_synthesised_once_and_replayed_identically() -> None:
    inner = FakeTTS(first_delay=0.05)
    cache = PhraseCache(inner, sentences("Hello! How can I help you?"))
    assert sentences("Hello! How can I help you?") == ["Hello!", "How can I help you?"]
    cache.prime()
    cache.prime()  # once at a time
    for _ in range(100):
        if cache.ready:
            break
        await asyncio.sleep(0.02)
    assert cache.ready and sorted(inner.texts) == ["Hello!", "How can I help you?"]
    first = await collect(cache, "Hello!")
    started = time.monotonic()
    again = await collect(cache, "Hello!")
    assert again == first and time.monotonic() - started < 0.05  # no TTS delay: kept audio
    assert inner.texts.count("Hello!") == 1
    # Other text goes straight through and is not kept.
    await collect(cache, "Something else.")
    await collect(cache, "Something else.")
    assert inner.texts.count("Something else.") == 2
    assert (cache.name, cache.sample_rate) == (inner.name, inner.sample_rate)


async def test_a_failed_synthesis_is_not_kept() -> None:
    inner = FakeTTS(fail_after=1, fail_times=1)
    cache = PhraseCache(inner, ["Hello there."])
    with pytest.raises(EngineError):
        await collect(cache, "Hello there.")
    assert not cache.ready
    assert await collect(cache, "Hello there.")
    assert cache.ready


# -- the webhook's pieces ---------------------------------------------------------------------


def test_twilio_beyond_loopback_needs_an_auth_token() -> None:
    from hark.config import Settings
    from hark.security import Security

    def fake_factory(emit: object) -> None:
        raise AssertionError("no call is made here")

    def line(**twilio: object) -> PhoneLine:
        settings = Settings.model_validate(
            {
                "server": {"host": "0.0.0.0"},
                "security": {"api_keys": ["k" * 32]},
                "twilio": {"enabled": True, **twilio},
            }
        )
        return PhoneLine(settings, Security.from_settings(settings), lambda tts, rate: fake_factory)

    with pytest.raises(ConfigError, match="HARK_TWILIO_AUTH_TOKEN"):
        line()
    assert line(auth_token="secret").router.routes


def test_twiml_connects_the_stream_with_the_token_as_a_parameter() -> None:
    twiml = twiml_connect("wss://voice.example.com/twilio/stream", 'a"b<c>&d')
    root = ET.fromstring(twiml)
    stream = root.find("./Connect/Stream")
    assert stream is not None and stream.attrib["url"] == "wss://voice.example.com/twilio/stream"
    assert [(p.attrib["name"], p.attrib["value"]) for p in stream.findall("Parameter")] == [
        ("token", 'a"b<c>&d')
    ]
