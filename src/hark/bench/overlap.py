"""Turn-taking corpus parts (c), (d) text half and (e): speech over hark's reply.

A real ``hark serve`` with the real Silero VAD and tiny.en STT (the fixed-delay fakes answer and
speak: a long reply, spoken as a quiet tone, so only the user's audio reaches the VAD and STT).
Each case asks a question, waits 0.8-1.4 s into the reply, then plays over it, fed in real time:

- (c) backchannels ("mhm", "yeah", "right", "okay", "uh-huh", ...) in espeak-ng voices, a laugh
  (espeak-ng's "ha ha ha") and a cough, which is synthesised: two bursts of band-passed noise
  with a fast attack and a decaying tail. A false barge-in is a reply cancelled or a turn
  committed (the agent would answer it, i.e. repeat itself).
- (d) own words, text half: hark's own reply words spoken back by espeak-ng at -12 dB, as if
  its voice leaked into the microphone (the acoustic echo corpus, with delays and reverb on
  hark's real voice, is the echo cancellation's). A self-interruption is a cancelled reply or a
  committed turn.
- (e) real interruptions: latency from the first frame of the interrupting speech to the reply's
  pause (``hark.output_paused``: what the listener hears stop) and to its cancellation
  (``response.done`` cancelled: confirmed by the words). A missed interruption resumes.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from hark.bench import stats
from hark.bench.audio import QUESTION, RATE, espeak, frames, silence, to_pcm16
from hark.bench.bargein import reply_playing
from hark.bench.client import Received, Session
from hark.bench.server import hark_server

REPLY = (
    "Here is the weather for the rest of the week. Monday starts cool and grey with a light wind. "
    "By Tuesday the clouds lift and the sun comes out over the river. Wednesday is warm enough "
    "for a long walk along the quays."
)
BACKCHANNELS = ("Mhm.", "Yeah.", "Right.", "Okay.", "Uh-huh.", "Yeah, right.", "I see.")
INTERRUPTIONS = (
    "Stop, tell me about Rome.",
    "Wait, what about Friday?",
    "No, I meant London.",
    "Hold on, how cold is it?",
)
LEAKS = ("Here is the weather for the rest", "the weather for the rest of the week")
"""From the reply's first sentence: words hark has begun to say when the leak is played."""
LEAK_DB = -12.0
VOICES = ("en-us", "en+f3", "en-us+m7")
TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class Case:
    part: str
    """"c" (must not interrupt), "d" (own words: must not interrupt) or "e" (must interrupt)."""
    label: str
    voice: str
    pcm: bytes


def cough(seed: int) -> bytes:
    """A synthetic cough: two bursts of noise (300-3000 Hz), 10 ms attack, ~120 ms decay."""
    rng = np.random.default_rng(seed)
    parts = []
    for length_ms, gap_ms in ((220, 90), (170, 0)):
        n = RATE * length_ms // 1000
        noise = np.fft.rfft(rng.standard_normal(n))
        freqs = np.fft.rfftfreq(n, 1 / RATE)
        noise[(freqs < 300) | (freqs > 3000)] = 0
        burst = np.fft.irfft(noise, n)
        t = np.arange(n) / RATE
        envelope = np.minimum(t / 0.01, 1.0) * np.exp(-t / 0.12)
        burst = burst * envelope
        parts += [0.5 * burst / np.max(np.abs(burst)), np.zeros(RATE * gap_ms // 1000)]
    return to_pcm16(np.concatenate(parts).astype(np.float32))


def _say(text: str, voice: str, gain_db: float = 0.0) -> bytes:
    pcm = espeak(text, voice=voice)
    if not pcm:
        raise RuntimeError("the turn-taking corpus needs espeak-ng (make test-deps installs it)")
    if gain_db:
        audio = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
        pcm = to_pcm16(audio * 10 ** (gain_db / 20))
    return pcm


def corpus(voices: tuple[str, ...]) -> list[Case]:
    cases: list[Case] = []
    for n, voice in enumerate(voices):
        cases += [Case("c", text, voice, _say(text, voice)) for text in BACKCHANNELS]
        cases.append(Case("c", "laugh (espeak-ng 'ha ha ha')", voice, _say("Ha ha ha.", voice)))
        cases.append(Case("c", "cough (synthesised noise bursts)", voice, cough(n)))
        cases += [Case("d", text, voice, _say(text, voice, LEAK_DB)) for text in LEAKS]
        cases += [Case("e", text, voice, _say(text, voice)) for text in INTERRUPTIONS]
    return cases


async def _case(
    session: Session, question: list[str | bytes], case: Case, rng: random.Random
) -> dict[str, Any]:
    mark, rid = await reply_playing(session, question, TIMEOUT_S)
    await asyncio.sleep(rng.uniform(0.8, 1.4))
    cut = session.mark()
    first, _ = session.enqueue([session.encode(f) for f in frames(case.pcm + silence(1200))])

    def settled(r: Received) -> bool:
        if r.type == "hark.speech_ignored":
            return True
        return r.type == "response.done" and r.data["response"]["id"] == rid

    outcome = await _first(session, settled, after=cut)
    speech_sent = await session.sent(first)
    cancelled = outcome.type == "response.done" and outcome.data["response"]["status"] == "cancelled"
    paused = session.find("hark.output_paused", after=cut)
    result: dict[str, Any] = {
        "part": case.part,
        "label": case.label,
        "voice": case.voice,
        "interrupted": cancelled,
        "ignored_as": outcome.data.get("reason") if outcome.type == "hark.speech_ignored" else None,
        "paused_ms": round((paused[0].at - speech_sent) * 1000, 1) if paused else None,
        "cancelled_ms": round((outcome.at - speech_sent) * 1000, 1) if cancelled else None,
    }
    # Let the speech end, then clear the stage for the next case: no reply may still be running.
    await asyncio.sleep(len(case.pcm) / 2 / RATE + 1.0)
    result["committed"] = bool(session.find("input_audio_buffer.committed", after=cut))
    heard = session.find("conversation.item.input_audio_transcription.completed", after=cut)
    result["heard"] = heard[0].data.get("transcript") if heard else None
    await _quiet(session, after=mark)
    return result


async def _first(session: Session, predicate: Callable[[Received], bool], *, after: int) -> Received:
    """The first event from ``after`` on that ``predicate`` accepts (polled on the 20 ms tick)."""
    deadline = asyncio.get_running_loop().time() + TIMEOUT_S
    position = after
    while True:
        for received in session.events[position:]:
            position += 1
            if predicate(received):
                return received
        if session.error is not None:
            raise ConnectionError(session.error)
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("neither a cancellation nor an ignored speech came")
        await asyncio.sleep(0.02)


async def _quiet(session: Session, *, after: int) -> None:
    """Cancel whatever reply is still going and wait until every response has ended."""
    created = {r.data["response"]["id"] for r in session.find("response.created", after=after)}
    done = {r.data["response"]["id"] for r in session.find("response.done", after=after)}
    if created - done:
        await session._ws.send('{"type": "response.cancel"}')
    for rid in created - done:

        def ended(r: Received, rid: str = rid) -> bool:
            return bool(r.data["response"]["id"] == rid)

        await session.wait_for("response.done", ended, after=after, limit_s=TIMEOUT_S)


def _rate(results: list[dict[str, Any]], part: str) -> float | None:
    chosen = [r for r in results if r["part"] == part and "error" not in r]
    if not chosen:
        return None
    failed = sum(1 for r in chosen if r["interrupted"] or r["committed"])
    return round(100 * failed / len(chosen), 1)


async def _drive(url: str, cases: list[Case]) -> list[dict[str, Any]]:
    rng = random.Random(17)
    session = Session(url)
    await session.start()
    question = [session.encode(f) for f in frames(_say(QUESTION, "en-us") + silence(800))]
    results: list[dict[str, Any]] = []
    try:
        for case in cases:
            try:
                results.append(await _case(session, question, case, rng))
            except (TimeoutError, ConnectionError, KeyError) as exc:
                results.append(
                    {"part": case.part, "label": case.label, "error": f"{type(exc).__name__}: {exc}"}
                )
            if session.error:
                break
    finally:
        await session.close()
    return results


def run(*, quick: bool = False, log: Callable[[str], None] = print) -> dict[str, Any]:
    from hark.bench.server import scripted_env

    voices = VOICES[:1] if quick else VOICES
    cases = corpus(voices)
    env = scripted_env(tts_ms_per_char=60.0)
    env.pop("HARK_STT_PROVIDERS")  # the real tiny.en: what is said decides
    llm = json.loads(env["HARK_LLM_PROVIDERS"])
    llm[0]["options"]["reply"] = REPLY
    env["HARK_LLM_PROVIDERS"] = json.dumps(llm)
    log(f"   speech over the reply: {len(cases)} cases, voices {', '.join(voices)}")
    with hark_server(env) as server:
        results = asyncio.run(_drive(server.ws_base + "/v1/realtime?model=hark&hark_events=1", cases))
    real = [r for r in results if r["part"] == "e" and "error" not in r]
    summary = {
        "corpus": {"voices": list(voices), "cases": len(cases), "speech": "espeak-ng; cough synthesised"},
        "false_bargein_pct_c": _rate(results, "c"),
        "self_interruption_pct_d_text": _rate(results, "d"),
        "missed_interruptions_e": sum(1 for r in real if not r["interrupted"]),
        "bargein_pause_ms": stats.summary([r["paused_ms"] for r in real if r["paused_ms"] is not None]),
        "bargein_cancel_ms": stats.summary(
            [r["cancelled_ms"] for r in real if r["cancelled_ms"] is not None]
        ),
        "errors": sum(1 for r in results if "error" in r),
        "cases": results,
    }
    log(f"   { ({k: v for k, v in summary.items() if k != 'cases'}) }")
    return summary
