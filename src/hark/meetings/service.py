"""Meetings: recording, live transcription, and the processing after stop.

One :class:`MeetingService` per process (created in the app's lifespan) owns the recording
store, the inference orchestrator and the diarizer. A transport (``/v1/meetings/stream``)
begins a meeting, feeds it audio and finishes it; the events a meeting produces while audio
arrives (:mod:`hark.meetings.events`: partial transcripts, per-segment errors) go to the
``emit`` callback the transport gave it, and stop going anywhere once the client has gone.

The work after stop runs in a task the service owns, not the connection, so it completes (and
its result is stored, for ``GET /v1/meetings/{id}``) even when the client disconnects.

Every meeting has an owner, the tenant of the credential that began it (see
``hark.security.auth``). It is stored inside the (encrypted) result, and only the same owner
can see, await or delete the meeting; for any other owner the meeting does not exist (the
routes answer 404, not 403, so ids cannot be probed).

The rooms: :mod:`~hark.meetings.meeting` (one meeting's state), :mod:`~hark.meetings.live`
(while it records), :mod:`~hark.meetings.processing` (after stop), :mod:`~hark.meetings.results`
(storage and retention, over :mod:`~hark.meetings.storage`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

from hark.assembly import Engines
from hark.config import Settings
from hark.meetings.diarizer import Diarizer
from hark.meetings.live import Recorder
from hark.meetings.meeting import Emit, Meeting, MeetingBusy, MeetingRefused, StopReason, new_meeting_id
from hark.meetings.models import MeetingResult
from hark.meetings.orchestrator import Orchestrator
from hark.meetings.processing import Processor, failed_result
from hark.meetings.results import Results
from hark.meetings.segmenter import Segmenter, SegmenterConfig
from hark.meetings.speaker_names import valid_names
from hark.security.limits import AudioThrottle
from hark.workflows import Workflow, build_workflows

__all__ = ["Meeting", "MeetingBusy", "MeetingRefused", "MeetingService", "StopReason"]

log = logging.getLogger("hark.meetings")

END_SILENCE_MS = 500
MAX_SEGMENT_S = 20.0
PREFIX_MS = 200
THROTTLE_BURST_S = 2.0


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
        workflow_tenants: dict[int, frozenset[str]] = (
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
        self.results = Results()
        self.recorder = Recorder(settings, engines, self.diarizer, self.orchestrator)
        self.processor = Processor(engines, self.diarizer, self.results, self.workflows, workflow_tenants)
        self._active: dict[str, Meeting] = {}
        self._finishing: dict[str, asyncio.Task[MeetingResult]] = {}
        self._closed = False

    # -- lifecycle ---------------------------------------------------------------------------

    @classmethod
    async def create(cls, settings: Settings, engines: Engines) -> MeetingService:
        service = cls(settings, engines)
        await service.start()
        return service

    async def start(self) -> None:
        await self.results.open(self.settings.meetings)
        if self.results.store is not None:
            log.info(
                "meeting store ready",
                extra={"encrypted": self.results.store.encrypted, "workflows": len(self.workflows)},
            )
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
        await self.results.aclose()

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
        self.results.check_open()
        meeting_id = new_meeting_id()
        writer = await self.results.open_recording(meeting_id)
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
        return await self.recorder.feed(meeting, pcm)

    def name_speakers(self, meeting: Meeting, names: dict[str, str]) -> dict[str, str]:
        """Names for speaker labels ({"S2": "Maria"}), used in the summary and action owners;
        accepted until the meeting's summary is written. Returns all names so far."""
        meeting.speaker_names.update(valid_names(names))
        return dict(meeting.speaker_names)

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
            await self.recorder.drain(meeting)
            future = self.orchestrator.submit(
                "finalize", meeting.id, lambda: self.processor.finalize(meeting)
            )
            result: MeetingResult = await future
        except Exception as exc:
            log.error("meeting processing failed", extra={"meeting": meeting.id, "error": type(exc).__name__})
            result = failed_result(meeting, exc)
            await self.results.save(result, meeting.owner)
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

    # -- stored meetings ---------------------------------------------------------------------

    def status(self, meeting_id: str, owner: str) -> str | None:
        """ "recording" or "processing" for a live meeting of ``owner``; None otherwise."""
        meeting = self._active.get(meeting_id)
        return meeting.status if meeting is not None and meeting.owner == owner else None

    async def load(self, meeting_id: str, owner: str) -> dict[str, Any] | None:
        """The stored result; None when unknown or not ``owner``'s. Raises StorageError when it
        cannot be read."""
        return await self.results.load(meeting_id, owner)

    async def delete(self, meeting_id: str, owner: str) -> bool:
        """Remove the meeting's audio and result if ``owner``'s. Raises MeetingBusy while it is
        live. Raises StorageError when the result cannot be read to check its owner."""
        live = self._active.get(meeting_id)
        if live is not None:
            if live.owner != owner:
                return False
            raise MeetingBusy(f"meeting {meeting_id} is still {live.status}")
        if await self.results.load(meeting_id, owner) is None:
            return False
        removed = await self.results.delete(meeting_id)
        if removed:
            log.info("meeting deleted", extra={"meeting": meeting_id})
        return removed
