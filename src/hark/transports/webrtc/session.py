"""A call's Realtime session: the WebSocket endpoint's session, with reply audio on the track.

Everything but audio is the Realtime session as the WebSocket serves it (same codec, same
dispatch, same errors). What differs, as OpenAI documents for WebRTC:

- reply audio is never sent as ``response.output_audio.delta``: it goes to the track, and
  ``output_audio_buffer.started`` / ``stopped`` say when it begins and ends playing;
- a barge-in (or the client's ``output_audio_buffer.clear``) empties the track at once, sends
  ``output_audio_buffer.cleared``, and the item is cut at the samples that were played;
- the caller's audio comes from the track, not ``input_audio_buffer.append``.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable

from hark.config import SecuritySettings
from hark.observability.metrics import Metrics
from hark.pipeline import events as ev
from hark.pipeline.conversation import Conversation, LLMStatus
from hark.pipeline.errors import PipelineError
from hark.transports import realtime_protocol as rp
from hark.transports.realtime import RealtimeSession
from hark.transports.webrtc.channel import ChannelSocket
from hark.transports.webrtc.media import ReplyTrack

log = logging.getLogger("hark.webrtc")


class CallSession(RealtimeSession):
    def __init__(
        self,
        socket: ChannelSocket,
        conversation_factory: Callable[[Callable[[ev.Event], None]], Conversation],
        llm_status: LLMStatus,
        model: str,
        *,
        track: ReplyTrack,
        session_id: str,
        metrics: Metrics | None,
        limits: SecuritySettings,
    ) -> None:
        # Set before the base class builds the conversation, whose events come here.
        self.track = track
        self._cuts: dict[str, float] = {}
        """Items cut by a barge-in while their reply was still running: ms played."""
        self._speaking: tuple[str, str] | None = None
        track.on_started = self._playback_started
        track.on_stopped = self._playback_stopped
        super().__init__(
            socket,  # type: ignore[arg-type]  # a WebSocket in the part the session uses
            conversation_factory,
            llm_status,
            model,
            metrics=metrics,
            session_id=session_id,
            limits=limits,
        )

    async def push_audio(self, pcm: bytes) -> None:
        """The caller's audio, decoded from the track (mono PCM16 at the conversation's rate)."""
        try:
            await self.conversation.push_audio(pcm)
        except Exception:
            log.exception("audio processing failed", extra={"session": self.id})

    async def _handle(self, event: rp.ClientEvent) -> None:
        if isinstance(event, rp.InputAudioAppend):
            raise rp.ProtocolError(
                "on a WebRTC call the microphone track carries the audio; input_audio_buffer.append "
                "is for WebSocket sessions",
                code="unsupported_event",
                event_id=event.event_id,
            )
        if isinstance(event, rp.OutputAudioClear) and not self.conversation.responding:
            self._clear_played()  # the reply is generated, its end is still playing
            return
        await super()._handle(event)

    def _on_event(self, event: ev.Event) -> None:
        match event:
            case ev.ResponseAudio(response_id, item_id, pcm):
                if self.metrics is not None:
                    self.metrics.observe(event)
                self.track.push(response_id, item_id, pcm)
                return
            case ev.ResponseStarted(response_id, item_id, _mode):
                self._speaking = (response_id, item_id)
            case ev.SpeechStarted():
                self.idle.touch(time.monotonic())
                if self.conversation.interrupt and self._speaking is None and self.track.pending:
                    self._clear_played()
            case ev.OutputCleared(response_id, item_id):
                self.track.drop(response_id)
                self.track.clear()
                self._cuts[item_id] = self.track.played_ms(item_id)
            case ev.ResponseDone(response_id, item_id):
                self._speaking = None
                super()._on_event(event)
                self.track.finish(response_id)
                if item_id in self._cuts:
                    self._truncate(item_id, self._cuts.pop(item_id))
                return
        super()._on_event(event)

    def _clear_played(self) -> None:
        """Empty the track after the reply has been generated: cut each item at what played."""
        for item_id, (response_id, played_ms) in self.track.clear().items():
            self._truncate(item_id, played_ms)
            self._put({"type": "output_audio_buffer.cleared", "response_id": response_id})

    def _truncate(self, item_id: str, played_ms: float) -> None:
        with contextlib.suppress(PipelineError):  # an item already deleted
            self.conversation.truncate(item_id, int(played_ms))

    def _playback_started(self, response_id: str) -> None:
        self._put({"type": "output_audio_buffer.started", "response_id": response_id})

    def _playback_stopped(self, response_id: str) -> None:
        self._put({"type": "output_audio_buffer.stopped", "response_id": response_id})
