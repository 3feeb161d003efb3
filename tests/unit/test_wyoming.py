"""The Wyoming adapter's pure parts: transcript agreement, audio validation, conversation
histories, the start-up and address rules, bounded framing, and info from the config."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest

from hark.config import Settings, WyomingSettings
from hark.errors import ConfigError
from hark.transports.wyoming import check_startup
from hark.transports.wyoming.asr import StableWords
from hark.transports.wyoming.audio_in import AudioFormat, AudioInput
from hark.transports.wyoming.errors import WyomingError
from hark.transports.wyoming.framing import BoundedReader, read_event
from hark.transports.wyoming.handle import (
    CONVERSATION_TTL_S,
    MAX_CONVERSATIONS,
    Conversations,
    conversation_id,
)
from hark.transports.wyoming.info import build_info
from hark.transports.wyoming.server import AddressPolicy


def test_stable_words_send_only_what_two_partials_agree_on() -> None:
    words = StableWords()
    assert words.partial("turn on") is None  # nothing to agree with yet
    assert words.partial("turn on the") == "turn on"
    assert words.partial("turn on the kitchen") == " the"
    assert words.partial("turn off the kitchen lights") is None  # a revision: nothing new agreed
    assert words.final("turn on the kitchen lights.") == " kitchen lights."


def test_stable_words_never_take_back_what_was_sent() -> None:
    words = StableWords()
    words.partial("play some")
    assert words.partial("play some music") == "play some"
    assert words.final("pay sum music") is None  # the transcript event carries the revision
    assert StableWords().final("hello there") == "hello there"


@pytest.mark.parametrize(
    ("data", "code"),
    [
        ({"rate": 7999, "width": 2, "channels": 1}, "unsupported_audio_format"),
        ({"rate": 96_001, "width": 2, "channels": 1}, "unsupported_audio_format"),
        ({"rate": 16_000, "width": 4, "channels": 1}, "unsupported_audio_format"),
        ({"rate": 16_000, "width": 2, "channels": 0}, "unsupported_audio_format"),
        ({"rate": 16_000.5, "width": 2, "channels": 1}, "invalid_audio"),
        ({"rate": True, "width": 2, "channels": 1}, "invalid_audio"),
        ({"width": 2, "channels": 1}, "invalid_audio"),
    ],
)
def test_audio_formats_outside_the_supported_set_are_refused(data: dict[str, object], code: str) -> None:
    with pytest.raises(WyomingError) as caught:
        AudioFormat.from_data(data)
    assert caught.value.code == code and not caught.value.fatal


def test_audio_input_mixes_resamples_and_bounds() -> None:
    fmt = AudioFormat(48_000, 2, 2)
    audio = AudioInput(fmt, 16_000, max_s=1.0)
    tone = (np.sin(np.arange(24_000) / 10) * 10_000).astype("<i2")
    audio.push(fmt, np.repeat(tone, 2).tobytes())  # 0.5 s, the same in both channels
    assert audio.seconds == pytest.approx(0.5)
    assert len(audio.audio(last=True)) == pytest.approx(8_000, abs=16)
    with pytest.raises(WyomingError, match="format differs"):
        audio.push(AudioFormat(16_000, 2, 1), bytes(4))
    with pytest.raises(WyomingError, match="whole 16-bit frames"):
        audio.push(fmt, bytes(6))
    with pytest.raises(WyomingError) as caught:
        audio.push(fmt, bytes(4 * 24_001))
    assert caught.value.code == "max_length_reached"


def test_conversations_expire_and_stay_bounded() -> None:
    now = [0.0]
    conversations = Conversations("prompt", 5, clock=lambda: now[0])
    first = conversations.get("a")
    first.add("1", "user", "hello")
    assert conversations.get("a") is first
    now[0] += CONVERSATION_TTL_S
    assert conversations.get("a") is not first  # expired: a new history
    for n in range(MAX_CONVERSATIONS + 10):
        conversations.get(f"c{n}")
    assert len(conversations) == MAX_CONVERSATIONS


def test_conversation_ids_come_from_the_context_or_are_made() -> None:
    assert conversation_id({"conversation_id": "01HXYZ"}) == "01HXYZ"
    for context in (None, {}, {"conversation_id": 5}, {"conversation_id": "x" * 500}, ["a"]):
        assert conversation_id(context).startswith("hark-")


def wyoming(**values: object) -> Settings:
    return Settings(wyoming=WyomingSettings(enabled=True, **values))  # type: ignore[arg-type]


def test_beyond_loopback_an_address_allow_list_is_required() -> None:
    check_startup(wyoming())
    check_startup(wyoming(host="::1"))
    check_startup(Settings(wyoming=WyomingSettings(host="0.0.0.0")))  # disabled: not checked
    with pytest.raises(ConfigError, match="allowed_clients"):
        check_startup(wyoming(host="0.0.0.0"))
    with pytest.raises(ConfigError, match="allows every address"):
        check_startup(wyoming(host="0.0.0.0", allowed_clients=["0.0.0.0/0"]))
    check_startup(wyoming(host="0.0.0.0", allowed_clients=["192.168.1.20", "10.0.0.0/24"]))
    with pytest.raises(ValueError, match="not an IP address"):
        WyomingSettings(allowed_clients=["homeassistant.local"])


def test_address_policy() -> None:
    policy = AddressPolicy(["192.168.1.20", "10.0.0.0/24"])
    assert policy.allows(("127.0.0.1", 5000))
    assert policy.allows(("::1", 5000, 0, 0))
    assert policy.allows(("192.168.1.20", 5000))
    assert policy.allows(("::ffff:10.0.0.7", 5000, 0, 0))
    assert not policy.allows(("192.168.1.21", 5000))
    assert not policy.allows(None)


async def events_from(raw: bytes, limit: int = 1024) -> list[object]:
    reader = asyncio.StreamReader(limit=limit)
    reader.feed_data(raw)
    reader.feed_eof()
    bounded = BoundedReader(reader, limit)
    out: list[object] = []
    while True:
        try:
            event = await read_event(bounded)
        except WyomingError as exc:
            out.append(exc.code)
            return out
        if event is None:
            return out
        out.append(event.type)


async def test_framing_is_the_library_s_and_bounded() -> None:
    ok = json.dumps({"type": "describe"}).encode() + b"\n"
    chunk = json.dumps({"type": "audio-chunk", "data_length": 2, "payload_length": 4}).encode() + b"\n{}abcd"
    assert await events_from(ok + chunk) == ["describe", "audio-chunk"]
    huge = json.dumps({"type": "audio-chunk", "payload_length": 10**12}).encode() + b"\n"
    assert await events_from(ok + huge) == ["describe", "event_too_large"]
    assert await events_from(json.dumps({"type": "x", "data_length": "9"}).encode() + b"\n") == [
        "invalid_event"
    ]
    assert await events_from(b"[1, 2]\n") == ["invalid_event"]
    assert await events_from(b"x" * 2000 + b"\n") == ["invalid_event"]
    assert await events_from(ok + chunk[:-2]) == ["describe"]  # cut mid-payload: the client left


def test_info_comes_from_the_running_config() -> None:
    settings = Settings.model_validate(
        {
            "stt": {"language": "fr", "partial_interval_ms": 0},
            "tts": {"providers": [{"kind": "espeak", "voice": "fr"}]},
        }
    )
    info = build_info(settings, llm_model="llama3.2")
    assert not info.asr[0].supports_transcript_streaming
    assert info.asr[0].models[0].languages == ["fr"]
    assert [(v.name, v.languages) for v in info.tts[0].voices] == [("fr", ["fr"])]
    assert [m.name for m in info.handle[0].models] == ["llama3.2"]
