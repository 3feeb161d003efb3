"""A turn's final transcript, reported in turn order."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from hark.engines.base import STT, Float32Array, Transcript
from hark.errors import EngineError, EngineSaturated
from hark.pipeline import events as ev
from hark.pipeline.record import Record

log = logging.getLogger("hark.conversation")


async def final_transcript(
    stt: STT,
    audio: Float32Array,
    *,
    language: str | None,
    item_id: str,
    previous: asyncio.Task[str | None] | None,
    speculative: asyncio.Task[Transcript] | None,
    emit: Callable[[ev.Event], None],
    record: Record,
) -> str | None:
    """The turn's text, reported after the ``previous`` turn's: the ``speculative`` transcript
    made at the pause the turn ended on when it came in, else a new transcription. None (and a
    ``TranscriptFailed`` event) when the STT fails."""
    if previous is not None:
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await previous
    try:
        if speculative is not None:
            try:
                transcript = await speculative
            except (EngineError, asyncio.CancelledError):
                transcript = await stt.transcribe(audio, language=language)
        else:
            transcript = await stt.transcribe(audio, language=language)
    except EngineError as exc:
        log.warning("transcription failed", extra={"engine": exc.engine, "retryable": exc.retryable})
        emit(ev.TranscriptFailed(item_id, str(exc), isinstance(exc, EngineSaturated)))
        return None
    text = transcript.text.strip()
    transcript_in(emit, record, item_id, text)
    return text


def transcript_in(emit: Callable[[ev.Event], None], record: Record, item_id: str, text: str) -> None:
    emit(ev.TranscriptFinal(item_id, text))
    record.user_transcript(item_id, text)
