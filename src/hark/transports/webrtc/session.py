"""A call's Realtime session: the WebSocket endpoint's session, with reply audio on the track.

Everything but audio is the Realtime session as the WebSocket serves it (same codec, same
dispatch, same errors). What differs, as OpenAI documents for WebRTC:

- reply audio is never sent as ``response.output_audio.delta``: it goes to the track, and
  ``output_audio_buffer.started`` / ``stopped`` say when it begins and ends playing;
- a barge-in (or the client's ``output_audio_buffer.clear``) empties the track at once, sends
  ``output_audio_buffer.cleared``, and the item is cut at the samples that were played;
- the caller's audio comes from the track, not ``input_audio_buffer.append``; with
  ``audio.echo_cancellation: on`` the frames the track handed to the encoder are the echo
  canceller's reference (exact: no playback clock to guess with, and nothing to take back on a
  barge-in, since what went out will play);
- a turn ends when its reply has played, not when it was generated (the idle timeout and the
  drain wait for the track);
- where a WebSocket would get a close frame (drain 1001, idle 1000, engines down 1011, …), a
  call gets ``hark.closing`` with the same code and reason (hark's events only), then the
  hang-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from hark.config import SecuritySettings
from hark.engines.aec import EchoCanceller
from hark.observability.metrics import Metrics
from hark.pipeline import events as ev
from hark.pipeline.conversation import Conversation, LLMStatus
from hark.pipeline.errors import PipelineError
from hark.transports import realtime_protocol as rp
from hark.transports.realtime import RealtimeSession, close_quietly
from hark.transports.webrtc.channel import ChannelSocket
from hark.transports.webrtc.media import ReplyTrack

log = logging.getLogger("hark.webrtc")

CLOSING_FLUSH_S = 0.5
"""How long the last words before a hang-up may take to go out (a peer that stopped reading
is hung up all the same)."""


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
        echo: EchoCanceller | None = None,
    ) -> None:
        # Set before the base class builds the conversation, whose events come here.
        self.socket = socket
        self.track = track
        self._cuts: dict[str, float] = {}
        """Items cut by a barge-in while their reply was still running: ms played."""
        self._speaking: tuple[str, str] | None = None
        track.on_started = self._playback_started
        track.on_stopped = self._playback_stopped
        self.canceller = echo
        """Takes hark's own voice out of the caller's audio (audio.echo_cancellation: on). Not
        the base class's ``echo``: that one is told to forget on a barge-in, and here what was
        handed to the encoder plays all the same."""
        if echo is not None:
            track.on_frame = echo.played
        socket.on_closing = self._last_words
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
            if self.canceller is not None:
                pcm = await self.canceller.heard(pcm)
            await self.conversation.push_audio(pcm)
        except Exception:
            log.exception("audio processing failed", extra={"session": self.id})

    @property
    def at_rest(self) -> bool:
        # A reply generated is not yet heard: the track may play it for seconds more.
        return self.conversation.idle and not self.track.busy

    async def drain(self, deadline: float) -> None:
        """As a WebSocket session drains, except that events are flushed only to a data channel
        that is open: a call still connecting, or a caller without ``oai-events``, would hold
        the writer (and so the server's exit) until the deadline for nobody."""
        # Polled, as the base class does: "at rest" is derived from several tasks and the track.
        while not self.at_rest and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        if self.socket.opened:
            await self.link.flushed(deadline + 1.0)
        await close_quietly(self.ws, 1001, "server is restarting; reconnect")

    async def _last_words(self, code: int, reason: str) -> None:
        """Before the server hangs up: what a WebSocket's close frame would have said."""
        self._put({"type": "hark.closing", "code": code, "reason": reason})
        if self.socket.opened:
            await self.link.flushed(time.monotonic() + CLOSING_FLUSH_S)

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
            case ev.OutputPaused():
                self.track.hold()  # paused at the playhead; a resume sends the rest again
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
