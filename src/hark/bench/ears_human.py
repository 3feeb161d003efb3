"""Human speech for the ears bench: pyannote.audio's 30 s two-speaker phone call (MIT).

The wheel carries ``sample.wav`` (16 kHz mono, two women on a telephone line) with its transcript
(``sample.stm``: 13 segments, speaker and times) and speaker turns (``sample.rttm``). hark reads
the files only: ``make bench`` takes them out of the wheel into ``.cache/human-speech`` (or set
``HARK_BENCH_HUMAN_SPEECH``); without them this part is skipped. The whole call is fed through
hark's cutting path after each leading silence; every turn the VAD makes is transcribed, the
words kept are scored against the transcript (WER), and turns that ended inside one speaker's
segment are counted (cut off on a real pause).
"""

from __future__ import annotations

import os
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soxr

from hark.bench.audio import RATE, frames, silence, to_pcm16
from hark.engines.base import Float32Array
from hark.pipeline.listener import Listener
from hark.pipeline.turns import TurnConfig, TurnEvent

INSTALL = "make .cache/human-speech/.stamp"
CUT_MARGIN_S = 0.15


@dataclass(frozen=True, slots=True)
class Segment:
    speaker: str
    start_s: float
    end_s: float
    text: str


@dataclass(frozen=True, slots=True)
class Call:
    pcm: bytes
    """PCM16 mono at the bench's 24 kHz."""
    segments: tuple[Segment, ...]

    @property
    def reference(self) -> str:
        return " ".join(s.text for s in self.segments)


def sample_folder() -> Path:
    """Where ``make .cache/human-speech/.stamp`` put the sample (or ``HARK_BENCH_HUMAN_SPEECH``)."""
    return Path(os.environ.get("HARK_BENCH_HUMAN_SPEECH", ".cache/human-speech")) / "pyannote/audio/sample"


def sample_call() -> Call | None:
    folder = sample_folder()
    wav, stm = folder / "sample.wav", folder / "sample.stm"
    if not (wav.is_file() and stm.is_file()):
        return None
    with wave.open(str(wav)) as reader:
        rate = reader.getframerate()
        audio = np.frombuffer(reader.readframes(reader.getnframes()), dtype="<i2").astype(np.float32) / 32768
    segments = []
    for line in stm.read_text(encoding="utf-8").splitlines():
        _, _, speaker, start, end, *words = line.split()
        segments.append(Segment(speaker, float(start), float(end), " ".join(words)))
    return Call(to_pcm16(soxr.resample(audio, rate, RATE)), tuple(segments))


@dataclass(frozen=True, slots=True)
class Turn:
    audio: Float32Array
    start_s: float
    stop_s: float


async def cut_turns(pcm: bytes, vad: object, lead_s: float = 0.0) -> list[Turn]:
    """Every turn server_vad makes of ``pcm``, as the server would transcribe it (the speculative
    cut at the pause a turn ends on), with its times in the call (``lead_s`` taken off)."""
    listener = Listener(vad, TurnConfig(), input_rate=RATE, prefix_ms=300, max_turn_s=30)  # type: ignore[arg-type]
    turns: list[Turn] = []
    at_pause: dict[int, Float32Array] = {}
    start_ms = 0
    for frame in frames(pcm + silence(1000)):
        for boundary in await listener.push(frame):
            if boundary.event is TurnEvent.SPEECH_STARTED:
                start_ms, at_pause = boundary.audio_ms, {}
            elif boundary.event is TurnEvent.PAUSED:
                at_pause[boundary.audio_ms] = listener.utterance()
            elif boundary.event is TurnEvent.SPEECH_STOPPED:
                audio = listener.take_utterance()
                turns.append(
                    Turn(
                        at_pause.get(boundary.audio_ms, audio),
                        start_ms / 1000 - lead_s,
                        boundary.audio_ms / 1000 - lead_s,
                    )
                )
    return turns


def cut_inside(turns: list[Turn], segments: tuple[Segment, ...]) -> int:
    """Turns that ended while the same segment's speaker was still talking."""
    return sum(
        any(s.start_s + CUT_MARGIN_S < t.stop_s < s.end_s - CUT_MARGIN_S for s in segments) for t in turns
    )
