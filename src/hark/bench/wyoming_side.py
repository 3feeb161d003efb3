"""``hark bench --only wyoming``: hark's Wyoming server beside wyoming-faster-whisper and
wyoming-piper (the programs Home Assistant users run today), on the same machine in the same
run, with the same model and voice files, measured by the same client (the ``wyoming`` library's
own ``AsyncTcpClient``), requests interleaved so both see the same load.

- STT: espeak-ng utterances at 16 kHz sent at once; total time from ``audio-stop`` to
  ``transcript`` and the word error rate against the text spoken.
- TTS: time from ``synthesize`` (or ``synthesize-start``) to the first ``audio-chunk``, and the
  real-time factor (time to the end of the audio / seconds of audio), streamed and not.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import soxr

from hark.bench import stats
from hark.bench.audio import RATE, espeak
from hark.bench.server import free_port, hark_server

UTTERANCES = (
    "Turn on the lights in the kitchen.",
    "What is the weather like today?",
    "Set a timer for ten minutes.",
    "Play some relaxing music in the living room.",
    "Is the front door locked?",
    "Turn off all the lights downstairs.",
    "What time is it in Tokyo?",
    "Add milk and eggs to my shopping list.",
)
TEXTS = (
    "The kitchen lights are now on.",
    "It is sunny and mild today, with a high of twenty degrees. You will not need an umbrella.",
    "Your timer is set for ten minutes. I will tell you when it is done.",
    "The front door is locked, and the garage door is closed.",
)
STT_RATE = 16_000
CHUNK_SAMPLES = 1024


def wer(reference: str, hypothesis: str) -> tuple[int, int]:
    """(word edits, reference words) after lower-casing and dropping punctuation."""
    ref = re.sub(r"[^\w\s']", " ", reference.lower()).split()
    hyp = re.sub(r"[^\w\s']", " ", hypothesis.lower()).split()
    row = list(range(len(hyp) + 1))
    for i, word in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, other in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (word != other))
    return row[-1], len(ref)


class WyomingProcess:
    """A Wyoming server subprocess; ready once it answers ``describe``."""

    def __init__(self, command: list[str], port: int, log_path: Path) -> None:
        self.command, self.port, self.log_path = command, port, log_path
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> WyomingProcess:
        self._log = open(self.log_path, "wb")  # closed in __exit__
        self.process = subprocess.Popen(self.command, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.command[2]} exited: {self.log_path.read_text()[-2000:]}")
            if asyncio.run(_answers(self.port)):
                return self
            time.sleep(0.5)
        raise RuntimeError(f"{self.command[2]} did not start")

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


def _client(port: int) -> Any:
    from wyoming.client import AsyncTcpClient

    return AsyncTcpClient("127.0.0.1", port, connect_timeout=5, read_timeout=120)


async def _answers(port: int) -> bool:
    from wyoming.info import Describe

    try:
        async with _client(port) as client:
            await client.write_event(Describe().event())
            event = await client.read_event()
            return event is not None and event.type == "info"
    except OSError:
        return False


async def _transcribe(port: int, pcm: bytes) -> tuple[float, str]:
    from wyoming.asr import Transcribe, Transcript
    from wyoming.audio import AudioChunk, AudioStart, AudioStop

    async with _client(port) as client:
        await client.write_event(Transcribe(language="en").event())
        await client.write_event(AudioStart(STT_RATE, 2, 1).event())
        step = CHUNK_SAMPLES * 2
        for offset in range(0, len(pcm), step):
            await client.write_event(AudioChunk(STT_RATE, 2, 1, pcm[offset : offset + step]).event())
        started = time.perf_counter()
        await client.write_event(AudioStop().event())
        while (event := await client.read_event()) is not None:
            if Transcript.is_type(event.type):
                return (time.perf_counter() - started) * 1000, str(Transcript.from_event(event).text)
    raise RuntimeError("no transcript")


async def _synthesize(port: int, text: str, *, streamed: bool) -> dict[str, float]:
    from wyoming.audio import AudioChunk
    from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop

    async with _client(port) as client:
        started = time.perf_counter()
        if streamed:
            await client.write_event(SynthesizeStart().event())
            for i, word in enumerate(text.split(" ")):
                await client.write_event(SynthesizeChunk(word if i == 0 else " " + word).event())
            await client.write_event(Synthesize(text).event())
            await client.write_event(SynthesizeStop().event())
        else:
            await client.write_event(Synthesize(text).event())
        last = "synthesize-stopped" if streamed else "audio-stop"
        first: float | None = None
        samples, rate = 0, 1
        while (event := await client.read_event()) is not None:
            if AudioChunk.is_type(event.type):
                chunk = AudioChunk.from_event(event)
                first = first if first is not None else time.perf_counter() - started
                samples, rate = samples + len(chunk.audio) // 2, chunk.rate
            elif event.type == last:
                break
        total = time.perf_counter() - started
    audio_s = samples / rate
    return {"first_audio_ms": (first or total) * 1000, "rtf": total / audio_s if audio_s else 0.0}


def _utterances() -> list[tuple[str, bytes]]:
    out = []
    for text in UTTERANCES:
        pcm = espeak(text)
        if pcm is None:
            raise RuntimeError("espeak-ng is needed for the Wyoming STT comparison")
        audio = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768
        resampled = soxr.resample(audio, RATE, STT_RATE)
        out.append((text, bytes((np.clip(resampled, -1, 1) * 32767).astype("<i2").tobytes())))
    return out


def _servers(tmp: Path) -> tuple[list[str], list[str], int, int]:
    from hark.engines.stt.faster_whisper import default_model_path
    from hark.engines.tts.piper import default_voice_path

    voice = default_voice_path()
    data = tmp / "piper"
    data.mkdir()
    for suffix in ("", ".json"):
        os.symlink(f"{voice}{suffix}", data / f"{voice.name}{suffix}")
    threads = str(len(os.sched_getaffinity(0)))
    stt_port, tts_port = free_port(), free_port()
    whisper = [sys.executable, "-m", "wyoming_faster_whisper", "--uri", f"tcp://127.0.0.1:{stt_port}"]
    whisper += ["--model", str(default_model_path()), "--data-dir", str(tmp / "whisper")]
    whisper += ["--stt-library", "faster-whisper", "--language", "en", "--beam-size", "1"]
    whisper += ["--compute-type", "int8", "--cpu-threads", threads, "--local-files-only"]
    piper = [sys.executable, "-m", "wyoming_piper", "--uri", f"tcp://127.0.0.1:{tts_port}"]
    piper += ["--voice", voice.name.removesuffix(".onnx"), "--data-dir", str(data)]
    return whisper, piper, stt_port, tts_port


def run(*, reps: int = 1, log: Callable[[str], None] = print) -> dict[str, Any]:
    utterances = _utterances()
    with tempfile.TemporaryDirectory(prefix="hark-bench-wyoming-") as name:
        tmp = Path(name)
        whisper, piper, stt_port, tts_port = _servers(tmp)
        wyoming_port = free_port()
        env = {"HARK_WYOMING_ENABLED": "true", "HARK_WYOMING_PORT": str(wyoming_port)}
        log(
            f"  hark, wyoming-faster-whisper, wyoming-piper: {len(utterances)} utterances, {len(TEXTS)} texts"
        )
        with (
            hark_server(env),
            WyomingProcess(whisper, stt_port, tmp / "whisper.log"),
            WyomingProcess(piper, tts_port, tmp / "piper.log"),
        ):
            result = asyncio.run(_measure(utterances, reps, wyoming_port, stt_port, tts_port))
    result["load_average"] = [round(x, 1) for x in os.getloadavg()]
    return result


async def _measure(
    utterances: list[tuple[str, bytes]], reps: int, hark: int, stt_port: int, tts_port: int
) -> dict[str, Any]:
    stt: dict[str, dict[str, list[Any]]] = {
        s: {"ms": [], "edits": [], "words": []} for s in ("hark", "other")
    }
    tts: dict[str, list[dict[str, float]]] = {
        f"{s}_{m}": [] for s in ("hark", "other") for m in ("whole", "streamed")
    }
    for warm in (True, False):  # one untimed pass first: both load lazily on their first request
        for _ in range(1 if warm else reps):
            for text, pcm in utterances[:1] if warm else utterances:
                for side, port in (("hark", hark), ("other", stt_port)):
                    ms, heard = await _transcribe(port, pcm)
                    if not warm:
                        edits, words = wer(text, heard)
                        stt[side]["ms"].append(ms)
                        stt[side]["edits"].append(edits)
                        stt[side]["words"].append(words)
            for text in TEXTS[:1] if warm else TEXTS:
                for mode in ("whole", "streamed"):
                    for side, port in (("hark", hark), ("other", tts_port)):
                        result = await _synthesize(port, text, streamed=mode == "streamed")
                        if not warm:
                            tts[f"{side}_{mode}"].append(result)

    def stt_summary(side: str) -> dict[str, Any]:
        s = stt[side]
        return {
            "total_ms": stats.summary(s["ms"], (50, 95)),
            "wer": round(sum(s["edits"]) / sum(s["words"]), 3),
        }

    def tts_summary(key: str) -> dict[str, Any]:
        rows = tts[key]
        return {
            "first_audio_ms": stats.summary([r["first_audio_ms"] for r in rows], (50, 95)),
            "rtf": stats.summary([r["rtf"] for r in rows], (50,), digits=3),
        }

    return {
        "stt": {"hark": stt_summary("hark"), "wyoming-faster-whisper": stt_summary("other")},
        "tts": {
            "hark": tts_summary("hark_whole"),
            "wyoming-piper": tts_summary("other_whole"),
            "hark_streamed": tts_summary("hark_streamed"),
            "wyoming-piper_streamed": tts_summary("other_streamed"),
        },
        "utterances": len(utterances) * reps,
        "texts": len(TEXTS) * reps,
    }


SECTION_START = "<!-- wyoming:start -->"
SECTION_END = "<!-- wyoming:end -->"


def _row(name: str, figures: dict[str, Any]) -> str:
    total, first, rtf = figures.get("total_ms"), figures.get("first_audio_ms"), figures.get("rtf")
    if total is not None:
        return f"| {name} | {total['p50']} | {total['p95']} | {figures['wer']:.1%} |"
    assert first is not None and rtf is not None
    return f"| {name} | {first['p50']} | {first['p95']} | {rtf['p50']} |"


def section(result: dict[str, Any], date: str) -> str:
    """The Wyoming comparison for docs/benchmarks.md (kept there between its markers)."""
    stt, tts = result["stt"], result["tts"]
    lines = [
        SECTION_START,
        "## Wyoming: hark beside wyoming-faster-whisper and wyoming-piper",
        "",
        f"`hark bench --only wyoming` on {date} (load average {result.get('load_average')} at the end): "
        f"{result['utterances']} espeak-ng utterances and {result['texts']} texts, one pass. "
        + " ".join((__doc__ or "").split("\n\n")[0].split(": ", 1)[1].replace("``", "`").split()),
        "",
        (__doc__ or "").split("\n\n", 1)[1].strip().replace("``", "`"),
        "",
        "| speech-to-text | audio-stop → transcript p50 (ms) | p95 (ms) | WER |",
        "|---|---|---|---|",
        *(_row(name, figures) for name, figures in stt.items()),
        "",
        "| text-to-speech | request → first audio p50 (ms) | p95 (ms) | real-time factor p50 |",
        "|---|---|---|---|",
        *(_row(name.replace("_streamed", ", streamed"), figures) for name, figures in tts.items()),
        "",
        *_targets(stt, tts),
        "",
        "Why: hark encodes a short utterance in a 10 s window instead of Whisper's padded 30 s",
        "(`stt.faster_whisper.encoder_window_s`); its Piper voice is cut at the decoder, so the first",
        "piece of a sentence is sent before the rest is synthesised, where wyoming-piper writes each",
        "sentence to a WAV file before sending any of it. The WER is on the raw text (no number",
        "normalisation), the same for both. The machine is shared: under the load average above, treat",
        "single figures as rough, the ratios as the finding.",
        SECTION_END,
    ]
    return "\n".join(lines)


def _targets(stt: dict[str, Any], tts: dict[str, Any]) -> list[str]:
    def ratio(a: dict[str, Any], b: dict[str, Any], key: str) -> float:
        return round(a[key]["p50"] / b[key]["p50"], 2) if a[key]["p50"] and b[key]["p50"] else float("nan")

    first = ratio(tts["hark"], tts["wyoming-piper"], "first_audio_ms")
    streamed = ratio(tts["hark_streamed"], tts["wyoming-piper_streamed"], "first_audio_ms")
    total = ratio(stt["hark"], stt["wyoming-faster-whisper"], "total_ms")
    wers = f"{stt['hark']['wer']:.1%} vs {stt['wyoming-faster-whisper']['wer']:.1%}"
    return [
        f"Targets: first TTS audio ≤ ½ of wyoming-piper's: {first}× "
        f"({'met' if first <= 0.5 else '**not met**'}),"
        f" streamed {streamed}× ({'met' if streamed <= 0.5 else '**not met**'}); STT time ≤"
        f" wyoming-faster-whisper's at equal WER: {total}× "
        f"({'met' if total <= 1 else '**not met**'}), WER {wers}.",
    ]


def write_section(path: Path, result: dict[str, Any], date: str) -> None:
    """Put the section into ``path``, replacing the previous one (or appending it)."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    block = section(result, date)
    pattern = re.compile(re.escape(SECTION_START) + ".*?" + re.escape(SECTION_END), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block
    path.write_text(text.rstrip() + "\n", encoding="utf-8")
