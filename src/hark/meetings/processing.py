"""A meeting after stop: diarise, summarise, store the result, run the workflows."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from hark.meetings.diarizer import Diarizer
from hark.meetings.meeting import Meeting
from hark.meetings.models import MeetingResult, TranscriptSegment
from hark.meetings.results import Results
from hark.meetings.speaker_names import carry_names, named_summary
from hark.meetings.summary import summarise
from hark.workflows import Workflow, run_workflows

if TYPE_CHECKING:
    from hark.assembly import Engines

log = logging.getLogger("hark.meetings")

WORKFLOW_LIMIT_S = 300.0
"""Longest the workflows may hold up a meeting's ``final`` event."""


class Processor:
    def __init__(
        self,
        engines: Engines,
        diarizer: Diarizer,
        results: Results,
        workflows: Sequence[Workflow],
        workflow_tenants: dict[int, frozenset[str]],
    ) -> None:
        self.engines = engines
        self.diarizer = diarizer
        self.results = results
        self.workflows = list(workflows)
        self._tenants = workflow_tenants
        """id(workflow) → the tenants it runs for; a workflow not in it runs for every tenant."""

    def workflows_for(self, owner: str) -> list[Workflow]:
        return [w for w in self.workflows if id(w) not in self._tenants or owner in self._tenants[id(w)]]

    async def finalize(self, meeting: Meeting) -> MeetingResult:
        """The finalize job: diarise, summarise, store, run the workflows."""
        records = meeting.transcribed()
        failed = sum(1 for r in meeting.segments.values() if r.error is not None)
        audio = self.results.audio_reader(meeting.id) if meeting.recording_ok else None
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
        await self.results.save(result, meeting.owner)
        workflows = self.workflows_for(meeting.owner)
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


def failed_result(meeting: Meeting, exc: BaseException) -> MeetingResult:
    """What is kept of a meeting whose processing failed: its transcript as it was."""
    return MeetingResult(
        meeting_id=meeting.id,
        status="failed",
        started_at=meeting.started_at,
        duration_s=round(meeting.duration_s, 2),
        transcript=[TranscriptSegment(start=r.start, end=r.end, text=r.text) for r in meeting.transcribed()],
        summary_error="the meeting could not be processed",
        error=f"processing failed: {type(exc).__name__}: {str(exc)[:300]}",
    )
