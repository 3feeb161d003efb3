"""Property tests (hypothesis) of the parsers that face clients (RELIABILITY #23).

Every input either parses or raises the project's validation error (``ProtocolError`` for client
events, ``AudioFormatError`` for audio), never anything else. Each property prints how many
examples it ran.
"""

from __future__ import annotations

import base64
import io
import json
import string
import wave
from collections.abc import Callable
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hark.audio import AudioFormatError, Resampler, decode_audio_file, decode_base64_pcm16
from hark.transports.realtime_protocol import KNOWN_TYPES, MAX_DEPTH, ProtocolError, parse_client_event

# Bounded so the whole file stays well under a minute on two cores.
FAST = settings(max_examples=400, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


def run_counted(
    name: str, prop: Callable[..., None], budget: settings, *strategies: st.SearchStrategy[Any]
) -> None:
    """Run ``prop`` over hypothesis-drawn arguments and print how many examples it saw."""
    count = 0

    @budget
    @given(st.tuples(*strategies))
    def counted(args: tuple[Any, ...]) -> None:
        nonlocal count
        count += 1
        prop(*args)

    counted()
    print(f"\n[property] {name}: {count} examples, other exceptions: 0")
    assert count > 0


# -- client events ------------------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=50)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=40,
)
type_names = st.sampled_from(sorted(KNOWN_TYPES)) | st.text(max_size=30)
field_names = st.sampled_from(
    [
        "event_id",
        "audio",
        "session",
        "response",
        "response_id",
        "item",
        "item_id",
        "content_index",
        "audio_end_ms",
        "previous_item_id",
        "token",
        "type",
    ]
) | st.text(max_size=10)


def parses_or_protocol_error(text: str) -> None:
    try:
        parse_client_event(text)
    except ProtocolError as exc:
        assert exc.message
        assert exc.code
        assert exc.event_id is None or (isinstance(exc.event_id, str) and len(exc.event_id) <= 512)


def deep(levels: int, leaf: str, kind: str) -> str:
    opener, closer = ("[", "]") if kind == "list" else ('{"a":', "}")
    return opener * levels + leaf + closer * levels


def test_parse_arbitrary_text() -> None:
    run_counted(
        "parse_client_event(arbitrary text)",
        parses_or_protocol_error,
        FAST,
        st.text(max_size=300) | st.text(alphabet='{}[]":,0123456789 tye', max_size=300),
    )


def test_parse_arbitrary_json() -> None:
    run_counted(
        "parse_client_event(arbitrary JSON value)",
        lambda value: parses_or_protocol_error(json.dumps(value)),
        FAST,
        json_values,
    )


def test_parse_deep_nesting() -> None:
    def prop(levels: int, kind: str, type_name: str, where: str) -> None:
        inner = deep(levels, "1", kind)
        if where == "top":
            text = inner
        else:
            text = json.dumps({"type": type_name, "event_id": "e"})[:-1] + f', "{where}": {inner}}}'
        try:
            parse_client_event(text)
        except ProtocolError:
            return
        # Only shallow structures may parse.
        assert levels < MAX_DEPTH

    run_counted(
        "parse_client_event(deep nesting, up to 100,000 levels)",
        prop,
        SLOW,
        st.integers(min_value=0, max_value=100_000),
        st.sampled_from(["list", "dict"]),
        st.sampled_from(sorted(KNOWN_TYPES)),
        st.sampled_from(["top", "session", "item", "response", "extra"]),
    )


def test_parse_known_type_with_arbitrary_fields() -> None:
    def prop(kind: str, fields: dict[str, Any], event_id: Any) -> None:
        event = {**fields, "type": kind}
        if event_id is not None:
            event["event_id"] = event_id
        try:
            parse_client_event(json.dumps(event))
        except ProtocolError as exc:
            if isinstance(event_id, str) and kind in KNOWN_TYPES:
                # A bad event that carried a string event_id is answered naming it.
                assert exc.event_id == event_id[:512]

    run_counted(
        "parse_client_event(valid type, arbitrary fields)",
        prop,
        FAST,
        type_names,
        st.dictionaries(field_names, json_values, max_size=6),
        st.none() | st.text(max_size=20) | st.integers() | st.text(min_size=600, max_size=700),
    )


# -- base64 PCM16 -------------------------------------------------------------------------------


def decodes_or_audio_error(data: object, max_bytes: int) -> None:
    try:
        pcm = decode_base64_pcm16(data, max_bytes=max_bytes)
    except AudioFormatError:
        return
    assert isinstance(pcm, bytes)
    assert len(pcm) % 2 == 0
    assert len(pcm) <= max_bytes


def test_decode_base64_arbitrary_objects() -> None:
    objects = json_values | st.binary(max_size=64) | st.builds(object) | st.text(max_size=200)
    run_counted(
        "decode_base64_pcm16(arbitrary objects/strings)",
        decodes_or_audio_error,
        FAST,
        objects,
        st.integers(min_value=0, max_value=4096),
    )


def test_decode_base64_of_arbitrary_bytes() -> None:
    def prop(raw: bytes, max_bytes: int, mangle: str) -> None:
        text = base64.b64encode(raw).decode()
        if mangle == "strip padding":
            text = text.rstrip("=")
        elif mangle == "urlsafe":
            text = base64.urlsafe_b64encode(raw).decode()
        elif mangle == "whitespace":
            text = " " + text + "\n"
        elif mangle == "non-ascii":
            text = text + "é"
        decodes_or_audio_error(text, max_bytes)
        if mangle == "none" and len(raw) % 2 == 0 and len(raw) <= max_bytes:
            assert decode_base64_pcm16(text, max_bytes=max_bytes) == raw

    run_counted(
        "decode_base64_pcm16(base64 of arbitrary bytes)",
        prop,
        FAST,
        st.binary(max_size=2048),
        st.integers(min_value=0, max_value=4096),
        st.sampled_from(["none", "strip padding", "urlsafe", "whitespace", "non-ascii"]),
    )


def test_decode_base64_alphabet_soup() -> None:
    alphabet = string.ascii_letters + string.digits + "+/=-_ \n"
    run_counted(
        "decode_base64_pcm16(base64-alphabet strings)",
        decodes_or_audio_error,
        FAST,
        st.text(alphabet=alphabet, max_size=400),
        st.integers(0, 400),
    )


# -- streaming resampler ------------------------------------------------------------------------

RATES = [8000, 11025, 16000, 22050, 24000, 44100, 48000]


@st.composite
def audio_and_cuts(draw: st.DrawFn) -> tuple[np.ndarray, list[int]]:
    n = draw(st.integers(min_value=0, max_value=12_000))
    seed = draw(st.integers(min_value=0, max_value=2**32 - 1))
    scale = draw(st.sampled_from([0.0, 1e-30, 0.5, 1.0, 1e6, 3e38]))
    audio = (np.random.default_rng(seed).uniform(-1, 1, n) * scale).astype(np.float32)
    cuts = sorted(draw(st.lists(st.integers(min_value=0, max_value=n), max_size=20)))
    return audio, cuts


def test_resampler_arbitrary_chunking() -> None:
    worst = 0.0

    def prop(in_rate: int, out_rate: int, data: tuple[np.ndarray, list[int]]) -> None:
        nonlocal worst
        audio, cuts = data
        resampler = Resampler(in_rate, out_rate)
        total = 0
        start = 0
        for cut in [*cuts, len(audio)]:
            out = resampler.process(audio[start:cut])
            assert out.dtype == np.float32
            total += len(out)
            start = cut
        total += len(resampler.process(np.zeros(0, dtype=np.float32), last=True))
        expected = len(audio) * out_rate / in_rate
        worst = max(worst, abs(total - expected))
        assert abs(total - expected) <= 2, (in_rate, out_rate, len(audio), cuts, total, expected)

    run_counted(
        "Resampler(arbitrary chunking)",
        prop,
        SLOW,
        st.sampled_from(RATES),
        st.sampled_from(RATES),
        audio_and_cuts(),
    )
    print(f"[property] Resampler worst length error: {worst:.2f} samples")


def test_resampler_bad_rates() -> None:
    def prop(in_rate: int, out_rate: int) -> None:
        try:
            Resampler(in_rate, out_rate)
        except AudioFormatError:
            assert in_rate <= 0 or out_rate <= 0
            return
        assert in_rate > 0 and out_rate > 0

    run_counted(
        "Resampler(arbitrary rates)",
        prop,
        SLOW,
        st.integers(-10, 10) | st.sampled_from(RATES),
        st.integers(-10, 10),
    )


# -- audio files --------------------------------------------------------------------------------


def wav_bytes(n: int, rate: int) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(bytes(2 * n))
    return buffer.getvalue()


VALID_WAV = wav_bytes(1600, 16000)


def decodes_or_file_error(data: bytes) -> None:
    try:
        audio = decode_audio_file(data, 16000)
    except AudioFormatError as exc:
        assert str(exc)
        return
    assert audio.dtype == np.float32
    assert audio.ndim == 1


def test_decode_audio_file_arbitrary_bytes() -> None:
    run_counted(
        "decode_audio_file(arbitrary bytes)",
        decodes_or_file_error,
        SLOW,
        st.binary(max_size=2048),
    )


def test_decode_audio_file_mutated_wav() -> None:
    def prop(flips: list[tuple[int, int]], cut: int) -> None:
        data = bytearray(VALID_WAV[: max(0, len(VALID_WAV) - cut)])
        for index, value in flips:
            if data:
                data[index % len(data)] = value
        decodes_or_file_error(bytes(data))

    run_counted(
        "decode_audio_file(mutated WAV)",
        prop,
        SLOW,
        st.lists(st.tuples(st.integers(0, 63), st.integers(0, 255)), max_size=8),
        st.integers(0, len(VALID_WAV)),
    )
