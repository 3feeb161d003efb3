"""Speech over a spoken reply: the async shell around ``interruptions.InterruptionGate``.

It pauses the reply's audio when the speech starts, transcribes the speech while it goes on
(one transcription at a time, every ``CHECK_MS`` of new audio, and at once when the speaker
pauses), and acts on the gate's decision: resume the reply where it paused, or hand the
interruption to the conversation. It knows nothing of turns' items or of any wire format.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from hark.engines.base import STT, Float32Array, Transcript
from hark.errors import EngineError, WorkShed
from hark.pipeline import events as ev
from hark.pipeline.interruptions import Action, InterruptionGate, InterruptionPolicy, Phase, Verdict
from hark.pipeline.language import SpeechLanguage
from hark.pipeline.responder import Responder
from hark.priority import Priority, work_as

log = logging.getLogger("hark.barge_in")

CHECK_MS = 160
"""New speech after which the speech so far is transcribed again while the reply is paused."""


class BargeIn:
    def __init__(
        self,
        policy: InterruptionPolicy,
        stt: STT,
        *,
        language: SpeechLanguage,
        emit: Callable[[ev.Event], None],
        interrupt: Callable[[], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``interrupt``: cancel the reply (the conversation's barge-in)."""
        self.policy = policy
        self._stt = stt
        self._language = language
        self._emit = emit
        self._interrupt = interrupt
        self._clock = clock
        self.gate = InterruptionGate(policy)
        self.rewind = True
        """Resume from where the listener's playhead was at the pause (the client dropped what it
        had buffered on speech_started); False: go on from the last audio sent (a transport whose
        far end keeps playing its buffer)."""
        self._reply: tuple[str, str, Responder] | None = None
        self._task: asyncio.Task[None] | None = None
        self._complete: tuple[int, asyncio.Task[Transcript]] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._checked_ms: int | None = None

    @property
    def deciding(self) -> bool:
        return self.gate.deciding

    def begin(self, response_id: str, item_id: str, responder: Responder) -> bool:
        """Speech started over this reply. False: it interrupts at once (backchannels are off)."""
        self._stop_work()
        if self.gate.phase is not Phase.SPEAKING:
            self.gate = InterruptionGate(self.policy)  # a new reply, or an old decision
        action = self.gate.speech_started(self._clock())
        if action is Action.INTERRUPT:
            return False
        self._reply = (response_id, item_id, responder)
        self._checked_ms = None  # the first transcription comes CHECK_MS into the speech
        at_ms = responder.pause(rewind=self.rewind)
        self._emit(ev.OutputPaused(response_id, item_id, int(at_ms)))
        delay = self.policy.confirm_ms / 1000.0
        self._timer = asyncio.get_running_loop().call_later(delay, self._expire)
        return True

    def check(self, heard_ms: int, utterance: Callable[[], Float32Array]) -> None:
        """More speech was heard: transcribe it again if ``CHECK_MS`` more came since last time."""
        if self._checked_ms is None:
            self._checked_ms = heard_ms  # the lead-in before speech began is not worth judging
        if not self.deciding or self._task is not None or heard_ms - self._checked_ms < CHECK_MS:
            return
        self._checked_ms = heard_ms
        # Interim: shed first under load; the transcript at the pause (or the end) still decides.
        # Deterministic: whether a leak of hark's own voice cancels the reply must not rest on
        # a random draw; the transcripts at the pause and the end (possibly the turn's) are not.
        interim = self._transcribe(utterance(), Priority.PARTIAL, deterministic=True)
        self._task = asyncio.create_task(self._judge(interim, complete=False))

    def paused(self, at_ms: int, audio: Float32Array) -> None:
        """The speaker paused at ``at_ms``: a transcript of everything so far settles it."""
        if not self.deciding:
            return
        self._stop_work()
        transcript = self._transcribe(audio)
        self._complete = (at_ms, transcript)
        self._task = asyncio.create_task(self._judge(transcript, complete=True))

    async def settle(self, at_ms: int, audio: Float32Array) -> tuple[Verdict, asyncio.Task[Transcript]]:
        """The speech ended at ``at_ms``: its verdict, and its transcript (the turn's, if it is
        one). Interrupts or resumes the reply accordingly."""
        reuse = self._complete is not None and self._complete[0] == at_ms
        if self._task is not None and not reuse:
            self._task.cancel()
        self._task = None
        transcript = self._complete[1] if self._complete is not None and reuse else self._transcribe(audio)
        self._complete = None
        heard = Transcript("")
        with contextlib.suppress(EngineError, asyncio.CancelledError):
            heard = await asyncio.shield(transcript)
        own = self._reply[2].full_text() if self._reply is not None else ""
        action = (
            self.gate.heard(heard.text, own, complete=True, now=self._clock(), logprob=heard.logprob)
            if self.deciding
            else Action.NONE
        )
        if action is Action.INTERRUPT or self.gate.phase is Phase.INTERRUPTED:
            self._act(action)
            return Verdict.WORDS, transcript
        verdict = self.gate.verdict or Verdict.NOISE
        self._act(action)
        self._act(self.gate.speech_ended())
        self._cancel_timer()
        return verdict, transcript

    def reset(self) -> None:
        """The reply is gone (cancelled, or the session ends): forget it and stop listening."""
        self._stop_work()
        self._cancel_timer()
        self._reply = None
        self.gate = InterruptionGate(self.policy)

    # -- inside ----------------------------------------------------------------------------

    def _transcribe(
        self, audio: Float32Array, priority: Priority = Priority.FINAL, *, deterministic: bool = False
    ) -> asyncio.Task[Transcript]:
        """FINAL by default: the transcript that settles whether the reply goes on is never shed."""
        with work_as(priority):
            return asyncio.create_task(
                self._stt.transcribe(audio, language=self._language.code, deterministic=deterministic)
            )

    async def _judge(self, transcript: asyncio.Task[Transcript], *, complete: bool) -> None:
        try:
            heard = await transcript
        except WorkShed:
            return
        except EngineError:
            log.warning("transcribing speech over the reply failed; the next transcript decides")
            return
        finally:
            if self._task is asyncio.current_task():
                self._task = None
        own = self._reply[2].full_text() if self._reply is not None else ""
        self._act(
            self.gate.heard(heard.text, own, complete=complete, now=self._clock(), logprob=heard.logprob)
        )

    def _expire(self) -> None:
        self._timer = None
        self._act(self.gate.expire(self._clock()))

    def _act(self, action: Action) -> None:
        if self._reply is None or action in (Action.NONE, Action.PAUSE):
            return
        response_id, item_id, responder = self._reply
        self._cancel_timer()
        if action is Action.RESUME:
            at_ms = responder.resume()
            self._emit(ev.OutputResumed(response_id, item_id, int(at_ms)))
        else:
            self._reply = None
            self._interrupt()

    def _stop_work(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        if self._complete is not None:
            self._complete[1].cancel()
            self._complete = None

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
