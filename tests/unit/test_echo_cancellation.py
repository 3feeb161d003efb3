"""Echo cancellation: the far-end timeline (pure) and WebRTC AEC3 on espeak-ng speech heard
back through a synthetic room (delay, reverberation, attenuation)."""

from __future__ import annotations

import numpy as np
import pytest

from hark.audio import float_to_pcm16, pcm16_to_float
from hark.bench.turns_echo import room_echo
from hark.config import AudioSettings, load_settings
from hark.engines.aec import EchoCanceller, FarEnd
from hark.errors import ConfigError
from tests.speech import speak

RATE = 16_000
FRAME = RATE // 50 * 2  # 20 ms of PCM16
SLACK = RATE // 20


def energy_db(audio: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(audio.astype(np.float64) ** 2) + 1e-20))


def run(canceller: EchoCanceller, mic: bytes) -> np.ndarray:
    out = b"".join(canceller.process(mic[i : i + FRAME]) for i in range(0, len(mic), FRAME))
    return pcm16_to_float(out)


# -- the far-end timeline ---------------------------------------------------------------------


def test_played_audio_lines_up_with_the_microphone_samples_it_plays_under() -> None:
    far = FarEnd(1000, tail_ms=100)
    far.take(10)  # the playhead is at sample 10
    far.play(np.ones(5, np.float32))  # nothing queued: plays from the playhead on
    far.play(np.full(5, 2.0, np.float32), at=20)  # a gap of silence before it
    chunk, echo = far.take(20)
    assert echo
    assert chunk.tolist() == [1.0] * 5 + [0.0] * 5 + [2.0] * 5 + [0.0] * 5


def test_audio_placed_before_the_queue_end_keeps_only_its_new_part() -> None:
    far = FarEnd(1000, tail_ms=0)
    far.play(np.ones(10, np.float32))
    far.play(np.full(10, 2.0, np.float32), at=5)
    assert far.take(15)[0].tolist() == [1.0] * 10 + [2.0] * 5


def test_an_echo_is_possible_only_until_the_tail_after_the_last_played_sample() -> None:
    far = FarEnd(1000, tail_ms=30)
    assert not far.take(10)[1]
    far.play(np.ones(10, np.float32))  # plays at samples 10-19: an echo may come until 50
    assert far.take(10)[1]
    assert far.take(30)[1]  # samples 20-49, within the tail
    assert not far.take(10)[1]


def test_clear_drops_what_was_not_played_but_keeps_the_tail() -> None:
    far = FarEnd(1000, tail_ms=20)
    far.play(np.ones(100, np.float32))
    far.take(10)
    far.clear()
    assert far.queued == 0
    chunk, echo = far.take(10)
    assert echo and not chunk.any()  # the room still rings with what had played
    assert far.take(10)[1]
    assert not far.take(10)[1]


# -- AEC3 -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reply() -> np.ndarray:
    text = "The weather in Paris is mild today, around eighteen degrees, with a light breeze."
    return pcm16_to_float(speak(text, rate=RATE))


def test_echo_through_a_room_is_removed(reply: np.ndarray) -> None:
    mic = room_echo(reply, RATE, gain_db=-12, delay_ms=90)
    canceller = EchoCanceller(RATE)
    canceller.played(float_to_pcm16(reply))
    out = run(canceller, float_to_pcm16(mic))
    settled = slice(len(mic) // 3, len(mic))  # after AEC3 has found the delay and the room
    assert energy_db(mic[settled]) - energy_db(out[settled]) >= 15
    assert canceller.frames_cancelled > 0


def test_the_users_speech_over_the_echo_survives(reply: np.ndarray) -> None:
    user = pcm16_to_float(speak("Wait, stop. What about Sunday?", voice="en+f3", rate=RATE)) * 0.5
    mic = room_echo(reply, RATE, gain_db=-12, delay_ms=90)
    at = len(mic) - len(user) - RATE // 4
    mic[at : at + len(user)] += user
    canceller = EchoCanceller(RATE)
    canceller.played(float_to_pcm16(reply))
    out = run(canceller, float_to_pcm16(mic))
    # AEC3 hands its output back a few ms late (8 ms at 16 kHz): line it up first.
    window = out[at - SLACK : at + len(user) + SLACK]
    lag = int(np.argmax(np.abs(np.correlate(window, user, "valid")))) - SLACK
    kept = out[at + lag : at + lag + len(user)]
    # Most of the user's energy is kept, and what is kept is the user's speech.
    assert energy_db(kept) - energy_db(user) >= -10
    assert np.corrcoef(kept, user)[0, 1] >= 0.6


def test_without_a_reply_the_microphone_passes_untouched() -> None:
    canceller = EchoCanceller(RATE)
    pcm = speak("Hello there.", rate=RATE)
    pcm += bytes(-len(pcm) % FRAME)
    assert b"".join(canceller.process(pcm[i : i + FRAME]) for i in range(0, len(pcm), FRAME)) == pcm
    assert canceller.frames_cancelled == 0


def test_a_piece_short_of_a_frame_is_held_for_the_next() -> None:
    canceller = EchoCanceller(RATE)
    assert canceller.process(bytes(100)) == b""
    assert len(canceller.process(bytes(300))) == 320  # one 10 ms frame; 80 bytes held


def test_unsupported_rates_are_refused() -> None:
    with pytest.raises(ValueError, match="11025"):
        EchoCanceller(11_025)


def test_where_the_client_removed_the_echo_the_users_speech_passes_untouched(reply: np.ndarray) -> None:
    """A browser's or a phone's own canceller leaves no echo: AEC3, still learning, would
    suppress the user barging in, so its output is not used."""
    noise = np.random.default_rng(3).standard_normal(reply.size).astype(np.float32) * 10 ** (-65 / 20)
    user = pcm16_to_float(speak("Wait, stop.", voice="en+f3", rate=RATE)) * 0.5
    mic = noise.copy()
    at = RATE * 2
    mic[at : at + len(user)] += user
    pcm = float_to_pcm16(mic)
    canceller = EchoCanceller(RATE)
    canceller.played(float_to_pcm16(reply))
    out = b"".join(canceller.process(pcm[i : i + FRAME]) for i in range(0, len(pcm), FRAME))
    assert canceller.presence.present is False
    assert out[at * 2 : (at + len(user)) * 2] == pcm[at * 2 : (at + len(user)) * 2]


def test_the_played_voice_in_the_microphone_is_recognised_as_echo(reply: np.ndarray) -> None:
    canceller = EchoCanceller(RATE)
    canceller.played(float_to_pcm16(reply))
    run(canceller, float_to_pcm16(room_echo(reply, RATE, gain_db=-20, delay_ms=150)))
    assert canceller.presence.present is True


# -- the setting ----------------------------------------------------------------------------


def test_the_setting_resolves_against_whether_aec3_is_installed() -> None:
    assert AudioSettings().echo_cancelled(installed=True)
    assert not AudioSettings().echo_cancelled(installed=True, by_default=False)  # auto, WebSocket
    assert AudioSettings(echo_cancellation="on").echo_cancelled(installed=True, by_default=False)
    assert not AudioSettings().echo_cancelled(installed=False)  # auto: quietly off
    assert not AudioSettings(echo_cancellation="off").echo_cancelled(installed=True)
    with pytest.raises(ConfigError, match="pywebrtc-audio"):
        AudioSettings(echo_cancellation="on").echo_cancelled(installed=False)


def test_the_setting_reads_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARK_AUDIO_ECHO_CANCELLATION", "off")
    assert load_settings().audio.echo_cancellation == "off"


def test_reply_audio_starts_under_the_sample_captured_now_not_the_last_one_read() -> None:
    """Microphone audio read late (the event loop was busy) was captured before the reply
    played: the reply's reference starts after it."""
    canceller = EchoCanceller(RATE)
    for i in range(50):  # one second, on time
        canceller.process(bytes(FRAME), now=0.02 * (i + 1))
    canceller.played(b"\x10\x00" * RATE, now=1.5)  # 0.5 s of audio not read yet
    assert canceller._far.take(RATE // 2)[0].max() == 0.0
    assert canceller._far.take(10)[0].min() > 0.0


def test_a_later_reply_echoing_sooner_than_the_first_is_still_removed() -> None:
    """A phone call: the greeting's echo came 297 ms after its reference, the answer's 65 ms
    (where the client starts playing is estimated anew for each reply). AEC3 kept the first
    delay and let the answer through until it was started afresh for each reply after a gap."""
    rate = 8000
    frame = rate // 50 * 2
    greeting = pcm16_to_float(speak("Hello, and thank you for calling. How can I help you today?", rate=rate))
    answer = pcm16_to_float(speak("It will be sunny all day, with a light breeze.", rate=rate))
    answer_at = greeting.size + 3 * rate  # nothing plays for 3 s: the caller asks
    mic = np.random.default_rng(1).standard_normal(answer_at + answer.size + rate).astype(np.float32)
    mic *= 10 ** (-65 / 20)
    tail = np.zeros(rate, np.float32)
    echo = room_echo(np.concatenate([greeting, tail]), rate, gain_db=-12, delay_ms=297)
    mic[: echo.size] += echo
    echo = room_echo(np.concatenate([answer, tail]), rate, gain_db=-12, delay_ms=65)
    mic[answer_at : answer_at + echo.size] += echo[: mic.size - answer_at]
    pcm = float_to_pcm16(mic)
    canceller = EchoCanceller(rate)
    canceller.played(float_to_pcm16(greeting), at_ms=0)
    out = []
    for i in range(0, len(pcm), frame):
        if i // 2 == answer_at - answer_at % (frame // 2):
            canceller.played(float_to_pcm16(answer), at_ms=answer_at * 1000 / rate)
        out.append(canceller.process(pcm[i : i + frame], now=i / 2 / rate))
    cleaned = pcm16_to_float(b"".join(out))
    onset = slice(answer_at + rate * 65 // 1000, answer_at + rate * 65 // 1000 + rate // 2)
    assert energy_db(mic[onset]) - energy_db(cleaned[onset]) >= 20  # its first 500 ms
    rest = slice(onset.stop, answer_at + answer.size)
    assert energy_db(mic[rest]) - energy_db(cleaned[rest]) >= 20
