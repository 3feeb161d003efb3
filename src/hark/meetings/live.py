"""A meeting while it records: audio paced, written and cut into segments, each segment
transcribed (with a tentative speaker) as soon as it ends, and a provisional transcript of a
long segment while it is still open."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from typing import TYPE_CHECKING

from hark.audio import float_to_pcm16
from hark.config import Settings
from hark.engines.base import Float32Array
from hark.errors import EngineError
from hark.meetings.diarizer import Diarizer, SegmentVoice
from hark.meetings.events import MeetingError, PartialTranscript, SpeakerMove, SpeakersUpdated
from hark.meetings.meeting import Meeting, SegmentRecord, StopReason
from hark.meetings.orchestrator import Orchestrator, OrchestratorClosed
from hark.meetings.segmenter import SpeechSegment
from hark.meetings.storage_errors import StorageError

if TYPE_CHECKING:
    from hark.assembly import Engines

log = logging.getLogger("hark.meetings")

Transcribed = tuple[str, SegmentVoice, str | None, dict[int, str]]
"""A segment's text, its voice, its tentative speaker, and earlier segments the live clustering
moved to another speaker."""


class Recorder:
    def __init__(
        self, settings: Settings, engines: Engines, diarizer: Diarizer, orchestrator: Orchestrator
    ) -> None:
        self.settings = settings
        self.engines = engines
        self.diarizer = diarizer
        self.orchestrator = orchestrator

    async def feed(self, meeting: Meeting, pcm: bytes) -> StopReason | None:
        """Client PCM16 for a recording meeting; returns why it must stop now, if it must."""
        if meeting.status != "recording":
            return None
        if meeting.throttle is not None:
            # Sleeping here stops the connection's reader (its queue fills), so a client sending
            # faster than allowed is held back by TCP rather than buffered.
            delay = meeting.throttle.push(pcm, time.monotonic())
            if delay > 0:
                await asyncio.sleep(delay)
        audio = meeting.segmenter.resample(pcm)
        if audio.size and meeting.recording_ok:
            try:
                await asyncio.to_thread(meeting.writer.write, float_to_pcm16(audio))
            except (OSError, StorageError) as exc:
                meeting.recording_ok = False
                log.error(
                    "recording failed; stopping the meeting",
                    extra={"meeting": meeting.id, "error": type(exc).__name__},
                )
                meeting.send(MeetingError("recording_failed", f"the recording could not be stored: {exc}"))
                return "storage_error"
        try:
            segments = await meeting.segmenter.push(audio)
        except EngineError as exc:
            log.error(
                "voice activity detection failed; stopping the meeting",
                extra={"meeting": meeting.id, "error": type(exc).__name__},
            )
            meeting.send(MeetingError("engine_error", f"speech detection failed: {exc}"))
            return "engine_error"
        for segment in segments:
            self.transcribe(meeting, segment)
        self._maybe_interim(meeting)
        if meeting.duration_s >= meeting.max_s:
            return "max_length"
        return None

    def transcribe(self, meeting: Meeting, segment: SpeechSegment) -> None:
        record = SegmentRecord(segment.index, segment.start, segment.end)
        meeting.segments[segment.index] = record
        stt, language, audio, diarizer = self.engines.stt, meeting.language, segment.audio, self.diarizer

        async def job() -> Transcribed:
            transcript, voice = await asyncio.gather(
                stt.transcribe(audio, language=language), diarizer.voice(audio, meeting_id=meeting.id)
            )
            text = transcript.text.strip()
            label: str | None = None
            changed: dict[int, str] = {}
            if text:  # tentative speaker: the live clustering so far (a re-clustering, off the loop)
                async with meeting.live_lock:
                    label, changed = await asyncio.to_thread(meeting.live.add, segment.index, voice)
            return text, voice, label, changed

        try:
            future = self.orchestrator.submit("transcribe", meeting.id, job)
        except OrchestratorClosed as exc:
            record.error = str(exc)
            return
        meeting.jobs.add(future)
        future.add_done_callback(functools.partial(self._transcribed, meeting, record))

    def _transcribed(
        self, meeting: Meeting, record: SegmentRecord, future: asyncio.Future[Transcribed]
    ) -> None:
        meeting.jobs.discard(future)
        if future.cancelled():
            record.error = "cancelled"
            return
        exc = future.exception()
        if exc is not None:
            record.error = str(exc)
            log.warning(
                "segment transcription failed",
                extra={"meeting": meeting.id, "segment": record.index, "error": type(exc).__name__},
            )
            meeting.send(
                MeetingError(
                    "transcription_failed",
                    f"segment {record.index} could not be transcribed",
                    segment=record.index,
                )
            )
            return
        record.text, record.voice, record.speaker, changed = future.result()
        if not record.text:
            return
        meeting.send(
            PartialTranscript(meeting.id, record.index, record.start, record.end, record.text, record.speaker)
        )
        moved = [(i, label) for i, label in sorted(changed.items()) if i in meeting.segments]
        for index, label in moved:
            meeting.segments[index].speaker = label
        if moved:
            meeting.send(SpeakersUpdated(meeting.id, tuple(SpeakerMove(i, label) for i, label in moved)))

    def _maybe_interim(self, meeting: Meeting) -> None:
        """While someone speaks for long, a provisional transcript of their segment so far every
        ``meetings.partial_interval_s`` (skipped while the orchestrator has a backlog)."""
        interval = self.settings.meetings.partial_interval_s
        if meeting.interim is not None or self.orchestrator.queued >= self.orchestrator.workers:
            return
        segmenter = meeting.segmenter
        if segmenter.next_index != meeting.interim_index:
            meeting.interim_index, meeting.interim_s = segmenter.next_index, 0.0
        seconds = segmenter.open_seconds
        if seconds == 0.0 or seconds - meeting.interim_s < interval:
            return
        current = segmenter.open_segment()
        if current is None:
            return
        index, start, audio = current
        meeting.interim_s = seconds
        end = meeting.duration_s
        stt, language = self.engines.stt, meeting.language

        async def job(clip: Float32Array = audio) -> str:
            # Provisional, redone as the segment grows: the same audio should read the same.
            transcript = await stt.transcribe(clip, language=language, deterministic=True)
            return transcript.text.strip()

        try:
            future = self.orchestrator.submit("transcribe", meeting.id, job)
        except OrchestratorClosed:
            return
        meeting.interim = future

        def done(future: asyncio.Future[str]) -> None:
            meeting.interim = None
            if future.cancelled() or future.exception() is not None:
                return
            text = future.result()
            if text and index not in meeting.segments and meeting.status == "recording":
                meeting.send(PartialTranscript(meeting.id, index, start, end, text, None, final=False))

        future.add_done_callback(done)

    async def drain(self, meeting: Meeting) -> None:
        """After stop: the segment still open, the recording closed, every segment transcribed."""
        try:
            for segment in await meeting.segmenter.flush():
                self.transcribe(meeting, segment)
        except EngineError as exc:
            log.warning(
                "the last segment could not be cut",
                extra={"meeting": meeting.id, "error": type(exc).__name__},
            )
        if meeting.interim is not None:
            meeting.interim.cancel()
        try:
            await asyncio.to_thread(meeting.writer.close)
        except (OSError, StorageError) as exc:
            meeting.recording_ok = False
            log.error(
                "the recording could not be completed",
                extra={"meeting": meeting.id, "error": type(exc).__name__},
            )
        if meeting.jobs:
            await asyncio.wait(set(meeting.jobs))
