"""Semantic end of turn with everything real: espeak-ng speech through Silero VAD, Smart Turn and
tiny.en transcribing the speech before each pause, as a conversation's speculation does."""

from __future__ import annotations

import asyncio

import pytest

from hark.config import FasterWhisperOptions
from hark.engines.base import Transcript
from hark.engines.stt.faster_whisper import FasterWhisperSTT
from hark.engines.turn.smart_turn import SmartTurn
from hark.engines.vad.silero import SileroVAD
from hark.pipeline.listener import Listener, TurnBoundary
from hark.pipeline.turns import Eagerness, TurnConfig, TurnEvent
from tests.speech import silence, speak

pytestmark = pytest.mark.slow

RATE = 24_000
FRAME = RATE * 2 * 20 // 1000


class PauseTranscripts:
    """The speculation's part: the transcript of the speech before each reported pause."""

    def __init__(self) -> None:
        self.at: dict[int, asyncio.Future[Transcript]] = {}

    def transcript_at(self, audio_ms: int) -> asyncio.Future[Transcript] | None:
        return self.at.get(audio_ms)


async def listen(
    parts: list[str], pause_ms: int, eagerness: Eagerness
) -> tuple[list[TurnBoundary], list[str], float]:
    """Say ``parts`` with ``pause_ms`` between them: the turn boundaries, the pauses' words and
    how much audio (ms) had been fed when the turn ended. Each pause's transcript is in before
    the turn model is asked (the pause outlasts it), so what is tested is the decision, not how
    fast this machine transcribes."""
    pcm = silence(400)
    for i, part in enumerate(parts):
        pcm += (silence(pause_ms) if i else b"") + speak(part)
    pcm += silence(2500)
    vad, model, stt = SileroVAD(), SmartTurn(), FasterWhisperSTT(FasterWhisperOptions())
    words = PauseTranscripts()
    config = TurnConfig(eagerness=eagerness)
    listener = Listener(
        vad, config, input_rate=RATE, prefix_ms=300, max_turn_s=30, turn_model=model, transcripts=words
    )
    boundaries: list[TurnBoundary] = []
    stopped_at = 0.0
    try:
        for i in range(0, len(pcm), FRAME):
            for boundary in await listener.push(pcm[i : i + FRAME]):
                boundaries.append(boundary)
                if boundary.event is TurnEvent.SPEECH_STOPPED:
                    stopped_at = (i + FRAME) / 2 / RATE * 1000
                if boundary.event is TurnEvent.PAUSED:
                    transcript = asyncio.ensure_future(stt.transcribe(listener.utterance()))
                    words.at[boundary.audio_ms] = transcript
                    await asyncio.wait([transcript])
    finally:
        await model.aclose()
        await vad.aclose()
        await stt.aclose()
    said = [t.result().text for t in words.at.values() if not t.exception()]
    return boundaries, said, stopped_at


async def test_a_pause_inside_a_number_does_not_end_a_semantic_turn() -> None:
    parts = ["My phone number is", "two three four", "five six seven, eight nine zero one."]
    boundaries, said, _ = await listen(parts, 700, Eagerness.MEDIUM)
    print(f"\n  the pauses' words: {said}")
    events = [b.event for b in boundaries]
    assert events.count(TurnEvent.SPEECH_STARTED) == 1, said
    assert events.count(TurnEvent.SPEECH_STOPPED) == 1, said
    (stop,) = [b for b in boundaries if b.event is TurnEvent.SPEECH_STOPPED]
    assert stop.audio_ms > 400 + 2 * 700, said  # after the last inner pause


async def test_a_short_complete_turn_still_ends_before_the_longest_silence() -> None:
    boundaries, said, stopped_at = await listen(["Paris."], 0, Eagerness.HIGH)
    print(f"\n  the pause's words: {said}")
    assert [b.event for b in boundaries].count(TurnEvent.SPEECH_STOPPED) == 1
    # The words and the model, not the longest silence (1000 ms for high), ended it (audio time).
    speech_end_ms = 400 + len(speak("Paris.")) / 2 / RATE * 1000
    assert stopped_at < speech_end_ms + 700, (stopped_at, speech_end_ms, said)
