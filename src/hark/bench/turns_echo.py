"""Corpus (d) of ``hark bench --only turns``: hark's own reply leaking back into its input.

The reply (espeak-ng, voices en-us and en+m3) reaches the microphone through a room: 30-150 ms of delay, a
short synthetic reverberation (an exponentially decaying noise tail, RT60 ~120 ms) and a gain
of -6, -12 or -20 dB (or none: the client removed it), over a -65 dBFS noise floor, alone and
with the user (voice en+f3) talking over it 1.5 s into the reply. Each case runs through hark's
own listening path (causal resampler, Silero VAD, turn detector) in 20 ms frames, once as the
microphone heard it and once through the echo canceller the phone and WebSocket paths use, fed
the reply as it was played. A speech start before the user speaks is a self-interruption
(today's barge-in fires on it); with the user talking, the speech start that follows is the
real barge-in, timed from the user's first sample.
"""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from hark.audio import float_to_pcm16, pcm16_to_float
from hark.bench.audio import RATE, espeak, frames, silence
from hark.engines.base import Float32Array
from hark.pipeline.listener import Listener
from hark.pipeline.turns import TurnConfig, TurnEvent

GAINS_DB: tuple[int | None, ...] = (-6, -12, -20, None)
"""None: no echo at all, as from a client whose own echo canceller removed it (a browser's
getUserMedia): what cancelling again on the server costs the user's speech."""
DELAYS_MS = (30, 90, 150)
REPLY = (
    "Sure. The weather in Paris today is mild, around eighteen degrees, with a light breeze "
    "from the west. Tomorrow looks wetter, so you may want an umbrella."
)
REPLY_VOICES = ("en-us", "en+m3")
USER = "Wait, stop. What about Sunday?"
USER_VOICE = "en+f3"
USER_AT_MS = 1500
LEAD_MS = 300
NOISE_DB = -65
"""The microphone's own noise floor (white, dBFS), under everything."""
MARGIN_MS = 50
"""A speech start this close before the user's first sample is the user's, not the echo's
(the listener's 96 ms start rule reports a start back at its first speech chunk)."""


def impulse_response(rate: int, *, rt60_ms: float = 120.0, seed: int = 1) -> Float32Array:
    """A direct path and a decaying diffuse tail, unit energy: a small room."""
    rng = np.random.default_rng(seed)
    n = int(rate * rt60_ms / 1000)
    response = rng.standard_normal(n) * np.exp(-np.arange(n) / (n / 6.9)) * 0.3
    response[0] = 1.0
    unit: Float32Array = (response / np.sqrt(np.sum(response**2))).astype(np.float32)
    return unit


def room_echo(played: Float32Array, rate: int, *, gain_db: float, delay_ms: float) -> Float32Array:
    """What a microphone hears of ``played`` (float32): delayed, reverberated, attenuated."""
    wet = np.convolve(played, impulse_response(rate))[: played.size] * 10 ** (gain_db / 20)
    delay = int(rate * delay_ms / 1000)
    return np.concatenate([np.zeros(delay, np.float32), wet[: played.size - delay]]).astype(np.float32)


@dataclass(frozen=True, slots=True)
class EchoCase:
    gain_db: int | None
    delay_ms: int
    with_user: bool
    reply: bytes
    """The reply as hark played it, PCM16 at 24 kHz, from LEAD_MS on."""
    mic: bytes
    user_start_ms: float | None
    user_end_ms: float | None


def corpus() -> list[EchoCase]:
    user_pcm = espeak(USER, voice=USER_VOICE)
    if not user_pcm:
        raise RuntimeError("the echo corpus needs espeak-ng (make test-deps installs it)")
    user = pcm16_to_float(user_pcm)
    cases = []
    for voice in REPLY_VOICES:
        reply_pcm = espeak(REPLY, voice=voice) or b""
        played = pcm16_to_float(silence(LEAD_MS) + reply_pcm + silence(1000))
        noise = np.random.default_rng(3).standard_normal(played.size).astype(np.float32)
        noise *= 10 ** (NOISE_DB / 20)
        for gain in GAINS_DB:
            for delay in DELAYS_MS if gain is not None else DELAYS_MS[:1]:
                echo = (
                    room_echo(played, RATE, gain_db=gain, delay_ms=delay)
                    if gain is not None
                    else np.zeros_like(played)
                )
                for with_user in (False, True):
                    mic = echo + noise
                    start_ms = end_ms = None
                    if with_user:
                        start_ms = LEAD_MS + USER_AT_MS
                        at = RATE * start_ms // 1000
                        mic[at : at + user.size] += user[: mic.size - at]
                        end_ms = start_ms + user.size * 1000 / RATE
                    pcm = float_to_pcm16(mic)
                    cases.append(EchoCase(gain, delay, with_user, reply_pcm, pcm, start_ms, end_ms))
    return cases


@dataclass(frozen=True, slots=True)
class EchoOutcome:
    self_interrupted: bool
    barge_in_ms: float | None
    """From the user's first sample to the speech start that answers it (None: no speech
    started while the user spoke, e.g. because the echo had already started one)."""


async def run_case(case: EchoCase, vad: Any, *, cancel: bool) -> EchoOutcome:
    from hark.engines.aec import EchoCanceller

    listener = Listener(vad, TurnConfig(), input_rate=RATE, prefix_ms=300, max_turn_s=30)
    canceller = EchoCanceller(RATE) if cancel else None
    if canceller is not None:
        canceller.played(case.reply, at_ms=LEAD_MS)  # hark knows where its reply starts playing
    fed_ms, self_interrupted, barge_in = 0.0, False, None
    for frame in frames(case.mic):
        if canceller is not None:
            frame = canceller.process(frame)
        fed_ms += 20
        for boundary in await listener.push(frame):
            if boundary.event is not TurnEvent.SPEECH_STARTED:
                continue
            user = case.user_start_ms
            if user is None or boundary.audio_ms < user - MARGIN_MS:
                self_interrupted = True
            elif barge_in is None and case.user_end_ms is not None and boundary.audio_ms < case.user_end_ms:
                barge_in = fed_ms - user
    return EchoOutcome(self_interrupted, barge_in)


async def _run(vad: Any, log: Callable[[str], None]) -> dict[str, Any]:
    cases = corpus()
    results: dict[str, Any] = {
        "corpus": {
            "cases": len(cases),
            "gains_db": [g if g is not None else "none (client-side AEC)" for g in GAINS_DB],
            "delays_ms": list(DELAYS_MS),
            "reverb": "synthetic, RT60 ~120 ms",
            "speech": f"espeak-ng (synthetic): replies {', '.join(REPLY_VOICES)}; user {USER_VOICE}",
        }
    }
    for cancel in (False, True):
        mode = "aec_on" if cancel else "aec_off"
        by_gain: dict[str, Any] = {}
        for gain in GAINS_DB:
            outcomes = [(c, await run_case(c, vad, cancel=cancel)) for c in cases if c.gain_db == gain]
            alone = [o for c, o in outcomes if not c.with_user]
            under = [o for c, o in outcomes if c.with_user]
            heard = [o.barge_in_ms for o in under if o.barge_in_ms is not None]
            label = f"{gain}dB" if gain is not None else "no_echo"
            by_gain[label] = {
                "self_interruptions_alone": f"{sum(o.self_interrupted for o in alone)}/{len(alone)}",
                "self_interruptions_under_user": f"{sum(o.self_interrupted for o in under)}/{len(under)}",
                "user_heard": f"{len(heard)}/{len(under)}",
                "user_barge_in_ms_p50": round(statistics.median(heard), 1) if heard else None,
            }
            log(f"   echo {mode} {label}: {by_gain[label]}")
        results[mode] = by_gain
    return results


def run(*, log: Callable[[str], None] = print) -> dict[str, Any]:
    from hark.engines.vad.silero import SileroVAD

    async def main() -> dict[str, Any]:
        vad = SileroVAD()
        try:
            return await _run(vad, log)
        finally:
            await vad.aclose()

    return asyncio.run(main())
