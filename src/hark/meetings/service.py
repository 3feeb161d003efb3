"""Meetings: recording, live transcription, and the processing after stop.

One :class:`MeetingService` per process (created in the app's lifespan) owns the recording
store, the inference orchestrator and the diarizer. A transport (``/v1/meetings/stream``)
begins a meeting, feeds it audio and finishes it; the events a meeting produces while audio
arrives (partial transcripts, per-segment errors) go to the ``emit`` callback the transport
gave it, and stop going anywhere once the client has gone.

The work after stop runs in a task the service owns, not the connection, so it completes (and
its result is stored, for ``GET /v1/meetings/{id}``) even when the client disconnects.

Every meeting has an owner, the tenant of the credential that began it (see
``hark.security.auth``). It is stored inside the (encrypted) result, and only the same owner
can see, await or delete the meeting; for any other owner the meeting does not exist (the
routes answer 404, not 403, so ids cannot be probed).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import re
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from hark.assembly import Engines
from hark.audio import float_to_pcm16
from hark.config import Settings
from hark.engines.base import Float32Array
from hark.errors import EngineError, HarkError
from hark.meetings.diarizer import Diarizer, Live, SegmentVoice
from hark.meetings.models import MeetingResult, TranscriptSegment
from hark.meetings.orchestrator import Orchestrator, OrchestratorClosed
from hark.meetings.segmenter import Segmenter, SegmenterConfig, SpeechSegment
from hark.meetings.speaker_names import carry_names, named_summary, valid_names
from hark.meetings.summary import summarise
from hark.security.limits import AudioThrottle
from hark.storage.recordings import MeetingStore, RecordingRefused, RecordingWriter, StorageError
from hark.workflows import Workflow, build_workflows, run_workflows

log = logging.getLogger("hark.meetings")

RATE = 16_000
END_SILENCE_MS = 500
MAX_SEGMENT_S = 20.0
PREFIX_MS = 200
WORKFLOW_LIMIT_S = 300.0
"""Longest the workflows may hold up a meeting's ``final`` event."""
SWEEP_INTERVAL_S = 3600.0
UNSAVED_KEPT = 100
THROTTLE_BURST_S = 2.0

Emit = Callable[[dict[str, Any]], None]
StopReason = Literal["client", "max_length", "storage_error", "engine_error", "disconnected", "shutdown"]


class MeetingRefused(HarkError):
    """A meeting cannot start; ``code`` is the wire error code."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


class MeetingBusy(HarkError):
    """The meeting is still recording or being processed."""


def new_meeting_id() -> str:
    return "mtg_" + uuid.uuid4().hex[:24]


@dataclass(slots=True)
class SegmentRecord:
    index: int
    start: float
    end: float
    text: str = ""
    voice: SegmentVoice | None = None
    speaker: str | None = None
    error: str | None = None


@dataclass(eq=False)
class Meeting:
    id: str
    started_at: float
    segmenter: Segmenter
    writer: RecordingWriter
    language: str | None
    speakers: int | None
    max_s: float
    emit: Emit | None
    owner: str = ""
    throttle: AudioThrottle | None = None
    """Paces the client's audio to ``security.max_audio_speed`` × real time."""
    status: Literal["recording", "processing"] = "recording"
    segments: dict[int, SegmentRecord] = field(default_factory=dict)
    jobs: set[asyncio.Future[Any]] = field(default_factory=set)
    live: Live = field(default_factory=lambda: Live(None))
    live_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    min_speakers: int | None = None
    max_speakers: int | None = None
    speaker_names: dict[str, str] = field(default_factory=dict)
    """Names the client gave speaker labels ({"S2": "Maria"})."""
    recording_ok: bool = True
    interim: asyncio.Future[Any] | None = None
    interim_index: int = -1
    interim_s: float = 0.0
    stopped_at: float | None = None
    stop_reason: StopReason | None = None

    @property
    def duration_s(self) -> float:
        return self.segmenter.position_s

    def send(self, event: dict[str, Any]) -> None:
        if self.emit is not None:
            self.emit(event)


class MeetingService:
    def __init__(
        self, settings: Settings, engines: Engines, *, workflows: Sequence[Workflow] | None = None
    ) -> None:
        meetings = settings.meetings
        self.settings = settings
        self.engines = engines
        self.orchestrator = Orchestrator(workers=meetings.workers, batch_size=meetings.batch_size)
        self.diarizer = Diarizer(
            meetings, getattr(engines, "speaker", None), getattr(engines, "speaker_error", None)
        )
        self.workflows = build_workflows(settings) if workflows is None else list(workflows)
        # build_workflows makes one workflow per configured entry, in order.
        self._workflow_tenants: dict[int, frozenset[str]] = (
            {
                id(w): frozenset(c.tenants)
                for w, c in zip(self.workflows, meetings.workflows, strict=True)
                if c.tenants
            }
            if workflows is None
            else {}
        )
        vad = settings.vad
        self.segmenter_config = SegmenterConfig(
            threshold=vad.threshold,
            neg_threshold=vad.neg_threshold,
            start_ms=vad.start_ms,
            end_silence_ms=END_SILENCE_MS,
            max_segment_s=MAX_SEGMENT_S,
            prefix_ms=PREFIX_MS,
        )
        self.store: MeetingStore | None = None
        self.store_error: str | None = None
        self._active: dict[str, Meeting] = {}
        self._finishing: dict[str, asyncio.Task[MeetingResult]] = {}
        self._unsaved: collections.OrderedDict[str, dict[str, Any]] = collections.OrderedDict()
        self._sweeper: asyncio.Task[None] | None = None
        self._closed = False

    # -- lifecycle ---------------------------------------------------------------------------

    @classmethod
    async def create(cls, settings: Settings, engines: Engines) -> MeetingService:
        service = cls(settings, engines)
        await service.start()
        return service

    async def start(self) -> None:
        meetings = self.settings.meetings
        try:
            self.store = await asyncio.to_thread(
                MeetingStore,
                meetings.data_dir,
                keys=[key.get_secret_value() for key in meetings.encryption_keys],
                retention_days=meetings.retention_days,
                memory_limit_bytes=int(meetings.memory_buffer_mb * 1024 * 1024),
            )
        except RecordingRefused as exc:
            self.store_error = str(exc)
            log.error("meetings cannot be recorded: an encryption key is invalid")
        except (OSError, StorageError) as exc:
            self.store_error = f"meetings.data_dir {meetings.data_dir} cannot be used ({exc})"
            log.error("meetings cannot be recorded: the data directory is not usable")
        else:
            log.info(
                "meeting store ready",
                extra={"encrypted": self.store.encrypted, "workflows": len(self.workflows)},
            )
            self._sweeper = asyncio.create_task(self._sweep_forever(), name="hark-meetings-sweeper")
        self.orchestrator.start()

    async def aclose(self) -> None:
        # 1. Refuse new meetings.
        self._closed = True
        # 2. Meetings still recording (their connections did not close first) stop here.
        for meeting in list(self._active.values()):
            if meeting.status == "recording":
                self.finish(meeting, "shutdown")
        # 3. Let every meeting being processed finish: its jobs need the orchestrator running.
        while self._finishing:
            log.info("finishing meetings before shutdown", extra={"meetings": len(self._finishing)})
            await asyncio.gather(*self._finishing.values(), return_exceptions=True)
        # 4. Stop the orchestrator; it finishes whatever is still queued (interim partials).
        await self.orchestrator.aclose()
        # 5. Stop the retention sweeper.
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper

    async def _sweep_forever(self) -> None:
        while True:
            store = self.store
            if store is not None:
                try:
                    removed = await asyncio.to_thread(store.sweep)
                except (OSError, StorageError) as exc:
                    log.warning("retention sweep failed", extra={"error": type(exc).__name__})
                else:
                    if removed:
                        log.info("expired meetings deleted", extra={"meetings": removed})
            await asyncio.sleep(SWEEP_INTERVAL_S)

    # -- a meeting ---------------------------------------------------------------------------

    async def begin(
        self,
        *,
        sample_rate: int,
        language: str | None = None,
        speakers: int | None = None,
        max_minutes: float | None = None,
        emit: Emit | None = None,
        owner: str = "",
        min_speakers: int | None = None,
        max_speakers: int | None = None,
        speaker_names: dict[str, str] | None = None,
    ) -> Meeting:
        names = valid_names(speaker_names or {})  # InvalidSpeakerNames before anything is opened
        if self._closed:
            raise MeetingRefused("the server is shutting down", code="shutting_down")
        if self.store is None:
            raise MeetingRefused(self.store_error or "meetings cannot be recorded", code="recording_refused")
        meeting_id = new_meeting_id()
        try:
            writer = await asyncio.to_thread(self.store.open_recording, meeting_id, sample_rate=RATE)
        except RecordingRefused as exc:
            raise MeetingRefused(str(exc), code="recording_refused") from None
        except (OSError, StorageError) as exc:
            raise MeetingRefused(f"the recording cannot be stored: {exc}", code="storage_error") from None
        limit = self.settings.meetings.max_minutes
        meeting = Meeting(
            id=meeting_id,
            started_at=time.time(),
            segmenter=Segmenter(self.engines.vad, self.segmenter_config, input_rate=sample_rate),
            writer=writer,
            language=language or self.settings.stt.language,
            speakers=speakers,
            max_s=min(limit, max_minutes or limit) * 60.0,
            emit=emit,
            owner=owner,
            throttle=AudioThrottle(
                self.settings.security.max_audio_speed, burst_s=THROTTLE_BURST_S, sample_rate=sample_rate
            ),
            live=self.diarizer.live(speakers=speakers, min_speakers=min_speakers, max_speakers=max_speakers),
            min_speakers=min_speakers,
            max_speakers=max_speakers,
            speaker_names=names,
        )
        self._active[meeting_id] = meeting
        log.info("meeting started", extra={"meeting": meeting_id, "sample_rate": sample_rate})
        return meeting

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
                meeting.send(_error_event("recording_failed", f"the recording could not be stored: {exc}"))
                return "storage_error"
        try:
            segments = await meeting.segmenter.push(audio)
        except EngineError as exc:
            log.error(
                "voice activity detection failed; stopping the meeting",
                extra={"meeting": meeting.id, "error": type(exc).__name__},
            )
            meeting.send(_error_event("engine_error", f"speech detection failed: {exc}"))
            return "engine_error"
        for segment in segments:
            self._transcribe(meeting, segment)
        self._maybe_interim(meeting)
        if meeting.duration_s >= meeting.max_s:
            return "max_length"
        return None

    def _transcribe(self, meeting: Meeting, segment: SpeechSegment) -> None:
        record = SegmentRecord(segment.index, segment.start, segment.end)
        meeting.segments[segment.index] = record
        stt, language, audio, diarizer = self.engines.stt, meeting.language, segment.audio, self.diarizer

        async def job() -> tuple[str, SegmentVoice, str | None, dict[int, str]]:
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
        self,
        meeting: Meeting,
        record: SegmentRecord,
        future: asyncio.Future[tuple[str, SegmentVoice, str | None, dict[int, str]]],
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
            event = _error_event("transcription_failed", f"segment {record.index} could not be transcribed")
            event["error"]["segment"] = record.index
            meeting.send(event)
            return
        record.text, record.voice, record.speaker, changed = future.result()
        if not record.text:
            return
        meeting.send(_partial(meeting, record.index, record.start, record.end, record.text, record.speaker))
        moved = [(i, label) for i, label in sorted(changed.items()) if i in meeting.segments]
        for index, label in moved:
            meeting.segments[index].speaker = label
        if moved:
            meeting.send(
                {
                    "type": "speakers_updated",
                    "meeting_id": meeting.id,
                    "segments": [{"segment": i, "speaker": label} for i, label in moved],
                }
            )

    def name_speakers(self, meeting: Meeting, names: dict[str, str]) -> dict[str, str]:
        """Names for speaker labels ({"S2": "Maria"}), used in the summary and action owners;
        accepted until the meeting's summary is written. Returns all names so far."""
        meeting.speaker_names.update(valid_names(names))
        return dict(meeting.speaker_names)

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
            return (await stt.transcribe(clip, language=language)).text.strip()

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
                meeting.send(_partial(meeting, index, start, end, text, None, final=False))

        future.add_done_callback(done)

    def finish(self, meeting: Meeting, reason: StopReason) -> asyncio.Task[MeetingResult]:
        """Stop recording; the processing runs in a task the service owns (see module doc)."""
        existing = self._finishing.get(meeting.id)
        if existing is not None:
            return existing
        meeting.status = "processing"
        meeting.stopped_at = time.monotonic()
        meeting.stop_reason = reason
        task = asyncio.create_task(self._finish(meeting), name=f"hark-meeting-{meeting.id}")
        self._finishing[meeting.id] = task
        task.add_done_callback(lambda _: self._finishing.pop(meeting.id, None))
        log.info(
            "meeting stopped",
            extra={"meeting": meeting.id, "reason": reason, "seconds": round(meeting.duration_s, 1)},
        )
        return task

    async def _finish(self, meeting: Meeting) -> MeetingResult:
        try:
            await self._drain(meeting)
            future = self.orchestrator.submit("finalize", meeting.id, lambda: self._finalize(meeting))
            result: MeetingResult = await future
        except Exception as exc:
            log.error("meeting processing failed", extra={"meeting": meeting.id, "error": type(exc).__name__})
            result = self._failed(meeting, exc)
            await self._save(result, meeting.owner)
        finally:
            self._active.pop(meeting.id, None)
        log.info(
            "meeting processed",
            extra={
                "meeting": meeting.id,
                "status": result.status,
                "segments": len(result.transcript),
                "speakers": len(result.speakers),
                "seconds_after_stop": round(time.monotonic() - (meeting.stopped_at or 0.0), 2),
            },
        )
        return result

    async def _drain(self, meeting: Meeting) -> None:
        """The segment still open, the recording closed, every segment transcribed."""
        try:
            for segment in await meeting.segmenter.flush():
                self._transcribe(meeting, segment)
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

    async def _finalize(self, meeting: Meeting) -> MeetingResult:
        """The finalize job: diarise, summarise, store, run the workflows."""
        records = [r for _, r in sorted(meeting.segments.items()) if r.text]
        failed = sum(1 for r in meeting.segments.values() if r.error is not None)
        store = self.store
        audio = None
        if store is not None and meeting.recording_ok:

            def audio() -> Any:
                return store.read_audio(meeting.id)

        diarization = await self.diarizer.diarize(
            [(r.start, r.end) for r in records],
            [r.voice for r in records],
            audio=audio,
            speakers=meeting.speakers,
            min_speakers=meeting.min_speakers,
            max_speakers=meeting.max_speakers,
            meeting_id=meeting.id,
        )
        names = carry_names([r.speaker for r in records], diarization.labels, meeting.speaker_names)
        overlap = diarization.overlap or [False] * len(records)
        transcript = [
            TranscriptSegment(
                start=round(r.start, 2),
                end=round(r.end, 2),
                text=r.text,
                speaker=label,
                speaker_name=names.get(label) if label else None,
                overlap=flag,
            )
            for r, label, flag in zip(records, diarization.labels, overlap, strict=True)
        ]
        summary, summary_error = await summarise(
            self.engines.llm, transcript, meeting_id=meeting.id, names=names
        )
        summary = named_summary(summary, names) if summary is not None else None
        result = MeetingResult(
            meeting_id=meeting.id,
            status="completed",
            started_at=meeting.started_at,
            duration_s=round(meeting.duration_s, 2),
            transcript=transcript,
            summary=summary.summary if summary is not None else None,
            summary_error=summary_error,
            decisions=summary.decisions if summary is not None else [],
            actions=summary.actions if summary is not None else [],
            diarization=diarization.method,
            diarization_error=diarization.error,
            speakers=list(dict.fromkeys(s.speaker for s in transcript if s.speaker)),
            speaker_names={
                label: name for label, name in names.items() if any(s.speaker == label for s in transcript)
            },
            error=f"{failed} speech segment(s) could not be transcribed" if failed else None,
        )
        await self._save(result, meeting.owner)
        workflows = [
            w
            for w in self.workflows
            if id(w) not in self._workflow_tenants or meeting.owner in self._workflow_tenants[id(w)]
        ]
        if workflows:
            outcomes = await run_workflows(workflows, result, limit_s=WORKFLOW_LIMIT_S)
            log.info(
                "workflows ran",
                extra={
                    "meeting": meeting.id,
                    "ok": sum(o.ok for o in outcomes),
                    "failed": len(outcomes) - sum(o.ok for o in outcomes),
                },
            )
        return result

    def _failed(self, meeting: Meeting, exc: BaseException) -> MeetingResult:
        records = [r for _, r in sorted(meeting.segments.items()) if r.text]
        return MeetingResult(
            meeting_id=meeting.id,
            status="failed",
            started_at=meeting.started_at,
            duration_s=round(meeting.duration_s, 2),
            transcript=[TranscriptSegment(start=r.start, end=r.end, text=r.text) for r in records],
            summary_error="the meeting could not be processed",
            error=f"processing failed: {type(exc).__name__}: {str(exc)[:300]}",
        )

    async def _save(self, result: MeetingResult, owner: str) -> None:
        data = {**result.model_dump(mode="json"), OWNER_FIELD: owner}
        try:
            if self.store is None:
                raise StorageError(self.store_error or "no store")
            await asyncio.to_thread(self.store.save_result, result.meeting_id, data)
        except (OSError, StorageError) as exc:
            log.error(
                "the meeting result could not be stored; kept in memory",
                extra={"meeting": result.meeting_id, "error": type(exc).__name__},
            )
            result.error = f"the result could not be stored: {exc}"
            self._unsaved[result.meeting_id] = {**result.model_dump(mode="json"), OWNER_FIELD: owner}
            while len(self._unsaved) > UNSAVED_KEPT:
                self._unsaved.popitem(last=False)

    # -- stored meetings ---------------------------------------------------------------------

    def status(self, meeting_id: str, owner: str) -> str | None:
        """ "recording" or "processing" for a live meeting of ``owner``; None otherwise."""
        meeting = self._active.get(meeting_id)
        return meeting.status if meeting is not None and meeting.owner == owner else None

    async def load(self, meeting_id: str, owner: str) -> dict[str, Any] | None:
        """The stored result; None when unknown or not ``owner``'s. Raises StorageError when it
        cannot be read."""
        result = self._unsaved.get(meeting_id)
        if result is None and self.store is not None and _valid_id(meeting_id):
            result = await asyncio.to_thread(self.store.load_result, meeting_id)
        if result is None or result.get(OWNER_FIELD, LEGACY_OWNER) != owner:
            return None
        return {k: v for k, v in result.items() if k != OWNER_FIELD}

    async def delete(self, meeting_id: str, owner: str) -> bool:
        """Remove the meeting's audio and result if ``owner``'s. Raises MeetingBusy while it is
        live. Raises StorageError when the result cannot be read to check its owner."""
        live = self._active.get(meeting_id)
        if live is not None:
            if live.owner != owner:
                return False
            raise MeetingBusy(f"meeting {meeting_id} is still {live.status}")
        if await self.load(meeting_id, owner) is None:
            return False
        dropped = self._unsaved.pop(meeting_id, None) is not None
        if self.store is None or not _valid_id(meeting_id):
            return dropped
        removed = await asyncio.to_thread(self.store.delete, meeting_id)
        if removed or dropped:
            log.info("meeting deleted", extra={"meeting": meeting_id})
        return removed or dropped


_MEETING_ID = re.compile(r"mtg_[0-9a-f]{24}")
OWNER_FIELD = "owner"
"""Where a stored result keeps its owner (never returned by the API)."""
LEGACY_OWNER = "anonymous"
"""Results stored before meetings had owners: readable only while auth is off."""


def _valid_id(meeting_id: str) -> bool:
    return _MEETING_ID.fullmatch(meeting_id) is not None


def _partial(
    meeting: Meeting,
    index: int,
    start: float,
    end: float,
    text: str,
    speaker: str | None,
    *,
    final: bool = True,
) -> dict[str, Any]:
    return {
        "type": "partial_transcript",
        "meeting_id": meeting.id,
        "segment": index,
        "start": round(start, 2),
        "end": round(end, 2),
        "text": text,
        "speaker": speaker,
        "final": final,
    }


def _error_event(code: str, message: str, *, kind: str = "server_error") -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "code": code, "message": message}}
