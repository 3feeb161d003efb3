"""``python -m hark.bench.turns_trace``: the turns corpus with each pause laid open.

Per case and per pause of a semantic mode: the pause's transcript, how sure tiny.en was of it
(``Transcript.logprob``, the mean log-probability per token; the text's compression ratio), the
turn model's answers there and how the words read, and where the turn ended. Then the
confidences of the transcripts where (a) turns were cut beside those where (b) turns ended
correctly: whether the recogniser doubts the words it misheard. With ``--words`` each of those
transcripts is decoded again, greedily, with word probabilities (the lowest one) and
faster-whisper's own signals (the no-speech probability); that decode is the bench's, not the
listener's, and may differ from it where the speculation fell back to sampling.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import zlib
from dataclasses import dataclass, replace
from typing import Any

from hark.bench.turns import MODES, Case, Outcome, _figures, corpus, run_case
from hark.bench.turns_timed import Heard, TimedModel
from hark.pipeline.completeness import read
from hark.pipeline.turns import TurnConfig


@dataclass(frozen=True, slots=True)
class Doubt:
    """One doubt setting to compare: ``TurnConfig.words_min_logprob`` and ``words_doubt_ms``.
    Written ``-0.8`` (the ms as configured by default), ``-0.8@1000``, ``-0.8@none``, ``none``."""

    min_logprob: float | None
    ms: float | None

    @classmethod
    def parse(cls, text: str) -> Doubt:
        bar, _, ms = text.partition("@")
        default = TurnConfig().words_doubt_ms
        return cls(_number(bar), default if not ms else _number(ms))

    def __str__(self) -> str:
        return f"{self.min_logprob}@{self.ms}" if self.min_logprob is not None else "None"


def _number(text: str) -> float | None:
    return None if text == "none" else float(text)


@dataclass(frozen=True, slots=True)
class Pause:
    """One pause of one case: its transcript and the model's answers there."""

    pause_ms: int
    text: str | None
    logprob: float | None
    compression: float | None
    probabilities: tuple[float, ...]
    audio: Any = None

    def row(self) -> dict[str, Any]:
        return {
            "pause_ms": self.pause_ms,
            "text": self.text,
            "reads": read(self.text).value if self.text is not None else None,
            "logprob": None if self.logprob is None else round(self.logprob, 3),
            "compression": self.compression,
            "p": [round(p, 2) for p in self.probabilities],
        }


def compression(text: str) -> float | None:
    """The compression ratio faster-whisper reads a repetition loop by (zlib, bytes in / out)."""
    data = text.strip().encode()
    return round(len(data) / len(zlib.compress(data)), 2) if data else None


def pauses(heard: list[Heard]) -> list[Pause]:
    """``heard`` gathered per pause, in the order the pauses came."""
    out: dict[int, Pause] = {}
    for h in heard:
        before = out.get(h.pause_ms) or Pause(h.pause_ms, None, None, None, ())
        if h.transcript is not None:
            t = h.transcript
            before = Pause(h.pause_ms, t.text, t.logprob, compression(t.text), before.probabilities, h.audio)
        if h.probability is not None:
            before = Pause(
                h.pause_ms,
                before.text,
                before.logprob,
                before.compression,
                (*before.probabilities, h.probability),
                before.audio,
            )
        out[h.pause_ms] = before
    return list(out.values())


async def trace(
    modes: list[str],
    voices: tuple[str, ...],
    kinds: tuple[str, ...],
    doubts: list[Doubt],
    details: bool,
) -> dict[str, Any]:
    """Each mode over the corpus once per doubt setting (``Doubt``), interleaved case by case
    (the order of the settings turning round at each case)."""
    from hark.config import FasterWhisperOptions
    from hark.engines.stt.faster_whisper import FasterWhisperSTT
    from hark.engines.turn.smart_turn import SmartTurn
    from hark.engines.vad.silero import SileroVAD

    cases = [c for c in corpus(voices) if c.kind in kinds]
    vad, model = SileroVAD(), TimedModel(SmartTurn())
    stt = FasterWhisperSTT(FasterWhisperOptions())
    out: dict[str, Any] = {"load_average_before": list(os.getloadavg())}
    try:
        for mode in modes:
            rows: dict[str, list[dict[str, Any]]] = {str(d): [] for d in doubts}
            outcomes: dict[str, list[tuple[Case, Outcome]]] = {str(d): [] for d in doubts}
            for n, case in enumerate(cases):
                for doubt in doubts if n % 2 == 0 else doubts[::-1]:
                    config = replace(
                        MODES[mode], words_min_logprob=doubt.min_logprob, words_doubt_ms=doubt.ms
                    )
                    heard: list[Heard] = []
                    outcome = await run_case(case, config, vad, model, stt, None, heard)
                    seen = pauses(heard)
                    ended = next((p for p in seen if p.pause_ms == outcome.ended_ms), None)
                    row = _row(case, outcome.cut_off, outcome.delay_ms, outcome.ended_ms, seen)
                    if details and ended is not None and ended.audio is not None:
                        row["ended_details"] = await asyncio.to_thread(decode, stt, ended.audio)
                    rows[str(doubt)].append(row)
                    outcomes[str(doubt)].append((case, outcome))
                    brief = {k: v for k, v in row.items() if k != "pauses"}
                    print(json.dumps({"mode": mode, "doubt": str(doubt), **brief}), flush=True)
            out[mode] = {
                d: {"figures": _figures(outcomes[d]), "table": table(rows[d]), "cases": rows[d]} for d in rows
            }
            for d in rows:
                print(mode, d, json.dumps(out[mode][d]["figures"]), flush=True)
        out["load_average_after"] = list(os.getloadavg())
    finally:
        await model.aclose()
        await vad.aclose()
        await stt.aclose()
    return out


def _row(case: Case, cut: bool, delay: float | None, ended: int | None, seen: list[Pause]) -> dict[str, Any]:
    end = next((p.row() for p in seen if p.pause_ms == ended), None)
    return {
        "kind": case.kind,
        "voice": case.voice,
        "cut_off": cut,
        "delay_ms": None if delay is None else round(delay),
        "ended_ms": ended,
        "ended_at": end,
        "pauses": [p.row() for p in seen],
    }


def decode(stt: Any, audio: Any) -> dict[str, Any]:
    """The bench's own greedy decode of ``audio`` as the STT would hear it, with word
    probabilities (reads the STT's private model: a diagnostic, not the listener's path)."""
    from hark.engines.stt.steady import steady_input

    heard = steady_input(audio, 16_000) if stt._steady else audio
    if stt._window_s:
        stt._model.window.frames = stt._encoder_frames(len(audio))
    segments, _ = stt._model.transcribe(
        heard,
        language="en",
        beam_size=1,
        temperature=0.0,
        condition_on_previous_text=False,
        without_timestamps=True,
        vad_filter=False,
        word_timestamps=True,
    )
    decoded = list(segments)
    probabilities = [w.probability for s in decoded for w in (s.words or [])]
    return {
        "text": " ".join(s.text.strip() for s in decoded),
        "avg_logprob": [round(s.avg_logprob, 3) for s in decoded],
        "no_speech": [round(s.no_speech_prob, 3) for s in decoded],
        "min_word_p": round(min(probabilities), 3) if probabilities else None,
        "words_p": [round(p, 2) for p in probabilities],
    }


def table(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Confidences at the pause that ended each turn: (a) cut off, (b) ended correctly."""
    groups = {
        "a_cut": [r for r in rows if r["kind"] != "short" and r["cut_off"]],
        "b_ended": [
            r for r in rows if r["kind"] == "short" and not r["cut_off"] and r["delay_ms"] is not None
        ],
    }
    out = {}
    for name, group in groups.items():
        logprobs = [
            r["ended_at"]["logprob"] for r in group if r["ended_at"] and r["ended_at"]["logprob"] is not None
        ]
        out[name] = {
            "n": len(group),
            "with_transcript": len(logprobs),
            "logprob_min": min(logprobs) if logprobs else None,
            "logprob_p50": round(statistics.median(logprobs), 3) if logprobs else None,
            "logprob_max": max(logprobs) if logprobs else None,
            "logprobs": sorted(logprobs),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--modes", default="semantic_high,semantic_medium,semantic_low")
    parser.add_argument("--voices", default=",".join(("en-us", "en+f3", "en-us+m7", "en+m3")))
    parser.add_argument("--kinds", default="paused,short")
    parser.add_argument(
        "--words", action="store_true", help="decode each ending pause again with word probabilities"
    )
    parser.add_argument(
        "--doubt",
        default="none",
        help="doubt settings to compare: words_min_logprob[@words_doubt_ms], e.g. none,-0.8@none,-0.8@1000",
    )
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    doubts = [Doubt.parse(d) for d in args.doubt.split(",")]
    modes, kinds = args.modes.split(","), tuple(args.kinds.split(","))
    result = asyncio.run(trace(modes, tuple(args.voices.split(",")), kinds, doubts, args.words))
    for mode in modes:
        for d, found in result[mode].items():
            print(mode, d, json.dumps(found["table"]))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
