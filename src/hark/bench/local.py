"""Scenarios 5 and 6 with the real local engines (faster-whisper tiny.en, Piper).

5. Voice-to-voice: one session at a time asks the question; the LLM is the scripted fake (first
   token 200 ms, then 20 ms a token), STT and TTS are real. Measured on the client from the end
   of the speech to the first reply audio, so it includes the 300 ms end-of-turn silence. Run
   with the worker pool on (the default), off, and on with Whisper's full 30 s encoder window
   (``stt.faster_whisper.encoder_window_s: 0``; the default encodes a short turn in 10 s).
6. ``POST /v1/audio/speech``: time to the first byte of the body and the real-time factor
   (request time / audio duration) per ``response_format``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from hark.bench import stats
from hark.bench.audio import QUESTION, frames, utterance
from hark.bench.client import Received, Session
from hark.bench.server import ServerProcess, hark_server

FORMATS = ("pcm", "wav", "mp3", "opus", "aac", "flac")
SPEECH_TEXT = "Paris is sunny and mild today. You will not need an umbrella."
TIMEOUT_S = 60.0


MODES: dict[str, dict[str, str]] = {
    "workers": {"HARK_WORKERS_ENABLED": "true"},
    "in_process": {"HARK_WORKERS_ENABLED": "false"},
    "workers_window_30s": {"HARK_WORKERS_ENABLED": "true", "HARK_STT_FASTER_WHISPER_ENCODER_WINDOW_S": "0"},
}
"""Configurations of scenario 5; the first is hark's default and gives the headline figure."""


def local_env(mode: str) -> dict[str, str]:
    return {
        **MODES[mode],
        "HARK_VAD_END_SILENCE_MS": "300",
        "HARK_LLM_PROVIDERS": '[{"kind": "scripted"}]',
    }


async def _v2v(url: str, turns: int) -> list[dict[str, Any]]:
    session = Session(url)
    await session.start()
    speech = [session.encode(f) for f in frames(utterance(QUESTION).pcm)]
    results: list[dict[str, Any]] = []
    try:
        await asyncio.sleep(0.5)
        for _ in range(turns):
            mark = session.mark()
            _, last = session.enqueue(speech)
            try:
                created = await session.wait_for("response.created", after=mark, limit_s=TIMEOUT_S)
                rid = created.data["response"]["id"]

                def mine(r: Received, rid: str = rid) -> bool:
                    return bool(r.data.get("response_id") == rid)

                def done(r: Received, rid: str = rid) -> bool:
                    return bool(r.data["response"]["id"] == rid)

                audio = await session.wait_for("audio", mine, after=mark, limit_s=TIMEOUT_S)
                latency = await session.wait_for("hark.latency", mine, after=mark, limit_s=TIMEOUT_S)
                await session.wait_for("response.done", done, after=mark, limit_s=TIMEOUT_S)
                transcript = session.find("conversation.item.input_audio_transcription.completed", after=mark)
            except (TimeoutError, ConnectionError, KeyError) as exc:
                results.append({"ok": False, "error": f"{type(exc).__name__}: {exc}"})
                if session.error:
                    break
                continue
            end = await session.sent(last)
            results.append(
                {
                    "ok": True,
                    "voice_to_voice_ms": round((audio.at - end) * 1000.0, 1),
                    "server": {k: v for k, v in latency.data.items() if k.endswith("_ms")},
                    "transcript": transcript[0].data.get("transcript") if transcript else None,
                }
            )
            await asyncio.sleep(0.8)
    finally:
        await session.close()
    return results


def _speech(base_url: str, reps: int) -> dict[str, Any]:
    from hark.audio import decode_audio_file

    out: dict[str, Any] = {}
    with httpx.Client(base_url=base_url, timeout=TIMEOUT_S) as client:
        body = {"model": "tts-1", "voice": "alloy", "input": SPEECH_TEXT}
        client.post("/v1/audio/speech", json={**body, "response_format": "pcm"}).raise_for_status()  # warm
        for fmt in FORMATS:
            ttfb: list[float] = []
            rtf: list[float] = []
            for _ in range(reps):
                started = time.perf_counter()
                first: float | None = None
                data = bytearray()
                with client.stream(
                    "POST", "/v1/audio/speech", json={**body, "response_format": fmt}
                ) as response:
                    response.raise_for_status()
                    for chunk in response.iter_bytes():
                        if first is None and chunk:
                            first = time.perf_counter()
                        data += chunk
                total = time.perf_counter() - started
                if first is None:
                    continue
                seconds = (
                    len(data) / 48_000
                    if fmt == "pcm"
                    else len(decode_audio_file(bytes(data), 24_000)) / 24_000
                )
                ttfb.append((first - started) * 1000.0)
                rtf.append(total / seconds if seconds else float("nan"))
            out[fmt] = {
                "ttfb_ms": stats.summary(ttfb, (50, 95)),
                "rtf": stats.summary(rtf, (50, 95), digits=3),
            }
    return out


def run(
    *, turns: int, speech_reps: int, modes: tuple[str, ...] = tuple(MODES), log: Any = print
) -> dict[str, Any]:
    """``turns`` 0 skips scenario 5, ``speech_reps`` 0 skips scenario 6 (run in the first mode)."""
    result: dict[str, Any] = {"v2v": {}, "turns": {}, "speech": None, "errors": {}}
    for label in modes:
        speech_here = result["speech"] is None and bool(speech_reps)
        log(
            f"  local engines ({label}): {turns} turns"
            + (f", speech x{speech_reps} per format" if speech_here else "")
        )
        server: ServerProcess = hark_server(local_env(label))
        try:
            with server:
                turns_out = (
                    asyncio.run(_v2v(server.ws_base + "/v1/realtime?model=hark&hark_events=1", turns))
                    if turns
                    else []
                )
                if result["speech"] is None and speech_reps:
                    result["speech"] = _speech(server.base_url, speech_reps)
        except Exception as exc:
            result["errors"][label] = f"{type(exc).__name__}: {exc}"
            continue
        if not turns:
            continue
        ok = [t for t in turns_out if t["ok"]]
        result["turns"][label] = [t["voice_to_voice_ms"] for t in ok]
        result["v2v"][label] = {
            "voice_to_voice_ms": stats.summary([t["voice_to_voice_ms"] for t in ok], (50, 95)),
            "server_ms": {
                key: stats.summary(
                    [t["server"][key] for t in ok if t["server"].get(key) is not None], (50, 95)
                )
                for key in ("end_of_turn_ms", "stt_ms", "llm_ttft_ms", "tts_ttfb_ms", "voice_to_voice_ms")
            },
            "turns_ok": len(ok),
            "turns_failed": len(turns_out) - len(ok),
            "failures": sorted({t["error"] for t in turns_out if not t["ok"]})[:5],
            "transcripts": sorted({t["transcript"] or "" for t in ok})[:3],
        }
    return result
