"""Does a call hear the end of a turn later because of the caller's Opus? In process, no network.

The bench's question, after ``lead`` ms of silence (every phase against the VAD's 32 ms chunks),
goes through hark's listener (causal resampler, Silero VAD, turn detector, server_vad defaults)
as a WebSocket client sends it (PCM16, 24 kHz) and as a call's listening path gets it: resampled
to 48 kHz as the bench's call client does, encoded 20 ms at a time by aiortc's ``OpusEncoder``
(what the bench's caller and any aiortc client send: libopus "voip", 96 kb/s) and decoded by
hark's mono decoder. Printed per phase: where the turn's trailing silence begins, in ms after
the last audible sample (the turn ends ``end_silence_ms`` after it, so differences between the
columns are differences in when ``speech_stopped`` fires); then the medians and means.

Columns: ``pcm24`` (the WebSocket), ``pcm48`` (resampled only), ``opus`` (the call), and
``opus-shifted`` (the decoded audio moved 6.5 ms earlier, i.e. without the encoder's look-ahead:
what is left is how Silero scores the coded tail), ``opus-browser`` (libopus as a browser sends
speech: mono, 32 kb/s, "voip", in-band FEC, complexity 9). ``--voices`` runs four sentences in
four espeak-ng voices instead of the bench's question alone. Each row is the server's defaults
(no ``webrtc.codec_tail_ms``), so the medians say how much a call's turn ends later.

::

    python -m hark.bench.opus_vad [step_ms] [--voices]
    python -m hark.bench.opus_vad 4 --pauses en+f3
"""

from __future__ import annotations

import asyncio
import fractions
import statistics
from collections.abc import Callable
from typing import Any

from hark.bench.audio import QUESTION, RATE, espeak, silence, utterance
from hark.bench.webrtc import CALL_RATE, _resample
from hark.engines.vad.silero import SileroVAD
from hark.pipeline.listener import Listener
from hark.pipeline.turns import TurnConfig, TurnEvent

LOOK_AHEAD_SAMPLES = 312
"""libopus "voip" at 48 kHz: 6.5 ms of look-ahead (measured by cross-correlation: 312 samples)."""
TAIL_MS = 1000


def _frames(pcm: bytes, rate: int) -> list[bytes]:
    size = rate // 50 * 2
    pcm += bytes(-len(pcm) % size)
    return [pcm[i : i + size] for i in range(0, len(pcm), size)]


def _round_trip(pcm48: bytes, encode: Callable[[Any], list[bytes]]) -> bytes:
    """``pcm48`` (mono PCM16, 48 kHz) handed to ``encode`` 20 ms at a time as audio frames, and
    every payload decoded as hark's ``CallerAudio`` decodes (mono, as it arrives)."""
    from av import AudioFrame, Packet
    from av.codec import CodecContext

    decoder: Any = CodecContext.create("libopus", "r")
    decoder.format, decoder.layout, decoder.sample_rate = "s16", "mono", CALL_RATE
    time_base = fractions.Fraction(1, CALL_RATE)
    out = bytearray()
    for i, pcm in enumerate(_frames(pcm48, CALL_RATE)):
        frame = AudioFrame(format="s16", layout="mono", samples=len(pcm) // 2)
        frame.planes[0].update(pcm)
        frame.pts, frame.sample_rate, frame.time_base = i * (len(pcm) // 2), CALL_RATE, time_base
        for payload in encode(frame):
            packet = Packet(payload)
            packet.pts, packet.time_base = 0, time_base
            for decoded in decoder.decode(packet):
                out += decoded.to_ndarray().tobytes()
    return bytes(out)


def opus_round_trip(pcm48: bytes) -> bytes:
    """``pcm48`` encoded frame by frame as aiortc's sender does (``_round_trip``)."""
    from aiortc.codecs.opus import OpusEncoder

    encoder = OpusEncoder()
    return _round_trip(pcm48, lambda frame: encoder.encode(frame)[0])


def browser_round_trip(pcm48: bytes) -> bytes:
    """``pcm48`` encoded as a browser sends a microphone (libopus, mono, 32 kb/s, "voip", in-band
    FEC on, complexity 9, 20 ms frames; ``_round_trip``)."""
    from av.codec import CodecContext

    encoder: Any = CodecContext.create("libopus", "w")
    encoder.bit_rate, encoder.format, encoder.layout = 32_000, "s16", "mono"
    encoder.sample_rate, encoder.time_base = CALL_RATE, fractions.Fraction(1, CALL_RATE)
    encoder.options = {"application": "voip", "fec": "1", "frame_duration": "20", "compression_level": "9"}
    return _round_trip(pcm48, lambda frame: [bytes(packet) for packet in encoder.encode(frame)])


async def silence_start_ms(
    vad: SileroVAD, pcm: bytes, rate: int, turn: TurnConfig | None = None
) -> int | None:
    """Where the first turn's trailing silence begins, in ms of input (``None``: no turn)."""
    listener = Listener(vad, turn or TurnConfig(), input_rate=rate, prefix_ms=300, max_turn_s=30)
    for frame in _frames(pcm, rate):
        for boundary in await listener.push(frame):
            if boundary.event is TurnEvent.SPEECH_STOPPED:
                return boundary.audio_ms
    return None


async def _phase(vad: SileroVAD, question: bytes, lead_ms: int) -> dict[str, float]:
    end_ms = lead_ms + len(question) / 2 / RATE * 1000
    pcm24 = silence(lead_ms) + question + silence(TAIL_MS)
    pcm48 = _resample(pcm24, CALL_RATE)
    coded = opus_round_trip(pcm48)
    inputs = {
        "pcm24": (pcm24, RATE),
        "pcm48": (pcm48, CALL_RATE),
        "opus": (coded, CALL_RATE),
        "opus-shifted": (coded[LOOK_AHEAD_SAMPLES * 2 :], CALL_RATE),
        "opus-browser": (browser_round_trip(pcm48), CALL_RATE),
    }
    row: dict[str, float] = {}
    for name, (pcm, rate) in inputs.items():
        start = await silence_start_ms(vad, pcm, rate)
        row[name] = float("nan") if start is None else start - end_ms
    return row


SENTENCES = (
    "What is the weather like today?",
    "Turn on the lights in the kitchen.",
    "Can you book a table for two at eight?",
    "I would like to hear some music.",
)
VOICES = ("en-us", "en+f3", "en-us+m7", "en+m3")


def _questions(voices: bool) -> list[tuple[str, bytes]]:
    if not voices:
        return [("en-us", utterance(QUESTION).pcm)]
    spoken = [(f"{voice}: {text}", espeak(text, voice=voice)) for voice in VOICES for text in SENTENCES]
    return [(name, pcm) for name, pcm in spoken if pcm]


async def _main(step_ms: int, voices: bool) -> None:
    vad = SileroVAD()
    rows: list[dict[str, float]] = []
    print("lead ms | trailing silence begins, ms after the last audible sample")
    for name, question in _questions(voices):
        if voices:
            print(name, flush=True)
        for lead in range(1000, 1032, step_ms):
            row = await _phase(vad, question, lead)
            rows.append(row)
            print(lead, "  ".join(f"{column} {value:+6.1f}" for column, value in row.items()), flush=True)
    for name in rows[0]:
        values = [row[name] for row in rows]
        delta = [row[name] - row["pcm24"] for row in rows]
        print(
            f"{name:13s} median {statistics.median(values):+6.1f} mean {statistics.fmean(values):+6.1f} "
            f"| minus pcm24: median {statistics.median(delta):+6.1f} mean {statistics.fmean(delta):+6.1f} "
            f"min {min(delta):+6.1f} max {max(delta):+6.1f}"
        )


PAUSE_PARTS = ("Can you book a table", "for two at eight?")
PAUSES_MS = (200, 230, 260, 290, 320, 350)


async def _pauses(voice: str, step_ms: int) -> None:
    """How many phases of one sentence with a pause inside it end the turn at the pause: PCM as a
    WebSocket sends it, and coded, with and without ``webrtc.codec_tail_ms``."""
    vad = SileroVAD()
    first, second = (espeak(part, voice=voice) or b"" for part in PAUSE_PARTS)
    tail = TurnConfig(coded_tail_ms=32)
    columns = ("pcm24", "browser", "browser+tail", "opus", "opus+tail")
    print(f"{voice}: pause ms | turns ended at the pause, of {len(range(1000, 1032, step_ms))}:", *columns)
    for pause in PAUSES_MS:
        counts = dict.fromkeys(columns, 0)
        for lead in range(1000, 1032, step_ms):
            pcm24 = silence(lead) + first + silence(pause) + second + silence(TAIL_MS)
            resumes_ms = lead + (len(first) / 2 / RATE + pause / 1000) * 1000
            pcm48 = _resample(pcm24, CALL_RATE)
            browser, aiortc = browser_round_trip(pcm48), opus_round_trip(pcm48)
            inputs = {
                "pcm24": (pcm24, RATE, None),
                "browser": (browser, CALL_RATE, None),
                "browser+tail": (browser, CALL_RATE, tail),
                "opus": (aiortc, CALL_RATE, None),
                "opus+tail": (aiortc, CALL_RATE, tail),
            }
            for name, (pcm, rate, turn) in inputs.items():
                start = await silence_start_ms(vad, pcm, rate, turn)
                counts[name] += start is not None and start < resumes_ms
        print(pause, *counts.values(), flush=True)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(prog="python -m hark.bench.opus_vad")
    parser.add_argument("step_ms", nargs="?", type=int, default=2, help="phase step (ms)")
    parser.add_argument("--voices", action="store_true", help="4 sentences x 4 voices")
    parser.add_argument("--pauses", metavar="VOICE", help="a pause inside a sentence, in this voice")
    options = parser.parse_args()
    if options.pauses:
        asyncio.run(_pauses(options.pauses, options.step_ms))
    else:
        asyncio.run(_main(options.step_ms, options.voices))
