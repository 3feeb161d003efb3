"""One phone call: Twilio's Media Stream in front of a Conversation.

The caller's μ-law joins the listening path every transport shares (8 kHz PCM16 into the
conversation, which resamples causally, runs the VAD and detects turns). Reply audio leaves as
20 ms μ-law ``media`` messages, paced by the conversation (at most ``output_lead_ms`` ahead of
the caller's ear), each reply chunk followed by a ``mark``. A barge-in sends ``clear``, and the
marks Twilio echoed say how much of the reply was heard: the history keeps those words only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from starlette.websockets import WebSocket, WebSocketDisconnect

from hark.config import SecuritySettings, TwilioSettings
from hark.engines.aec import EchoCanceller
from hark.observability.metrics import Metrics
from hark.pipeline import events as ev
from hark.pipeline.conversation import Conversation, LLMStatus, new_id
from hark.pipeline.errors import PipelineError
from hark.pipeline.items import Item
from hark.security import (
    CLOSE_IDLE,
    CLOSE_TRY_AGAIN,
    CLOSE_UNAUTHORIZED,
    AudioThrottle,
    IdleTimer,
)
from hark.security.tokens import TokenError, TokenIssuer
from hark.transports.outbox import Outbox
from hark.transports.socket import Message, SocketLink
from hark.transports.twilio import mulaw
from hark.transports.twilio import protocol as tp
from hark.transports.twilio.dtmf import DtmfCollector, as_text
from hark.transports.twilio.playback import MarkLedger

log = logging.getLogger("hark.twilio")

TOKEN_KIND = "twilio"
CLOSE_POLICY = 1008
MAX_BAD_MESSAGES = 100
"""Unusable messages one call may send (each is logged and ignored) before it is closed."""
INBOUND_TRACKS = (None, "inbound", "inbound_track")

ConversationFactory = Callable[[Callable[[ev.Event], None]], Conversation]


class PhoneSession:
    def __init__(
        self,
        websocket: WebSocket,
        conversation_factory: ConversationFactory,
        *,
        tokens: TokenIssuer,
        settings: TwilioSettings,
        limits: SecuritySettings,
        llm_status: LLMStatus,
        metrics: Metrics | None = None,
        echo: EchoCanceller | None = None,
    ) -> None:
        self.ws = websocket
        self.echo = echo
        """Takes hark's own voice out of the caller's audio (audio.echo_cancellation)."""
        self.id = new_id("call")
        self._factory = conversation_factory
        self._tokens = tokens
        self.settings = settings
        self.llm_status = llm_status
        self.metrics = metrics
        self.outbox = Outbox(limits.outbound_buffer_bytes, event_ids=False)
        self.link = SocketLink(websocket, self.outbox)
        self.ledger = MarkLedger()
        self.idle = IdleTimer(limits.idle_timeout_s, time.monotonic())
        self.throttle = AudioThrottle(limits.max_audio_speed, burst_s=2.0, sample_rate=mulaw.RATE)
        self.dtmf = DtmfCollector(settings.dtmf_gap_ms)
        self.conversation: Conversation | None = None
        self.stream_sid = ""
        self.bad_messages = 0
        self.started_at: float | None = None
        """time.monotonic() when the valid ``start`` arrived."""
        self.first_audio_ms: float | None = None
        """From ``start`` to the first reply ``media`` queued for the socket (the greeting)."""
        self._active: tuple[str, str] | None = None
        """(response_id, item_id) of the reply being spoken."""
        self._item_sent_ms = 0.0
        self._cut_at_done: set[str] = set()
        """Items interrupted while still speaking: cut to what was heard once they end."""
        self._ended = asyncio.Event()
        self._end_reason: str | None = None
        self._dtmf_timer: asyncio.TimerHandle | None = None
        self._keys_waiting: list[str] = []

    # -- lifecycle -----------------------------------------------------------------------

    async def run(self) -> None:
        """Until the call ends. Nothing is started (no conversation, no engine) until ``start``
        has carried a valid single-use token."""
        start = await self._authenticate()
        if start is None:
            return
        self.stream_sid = start.stream_sid
        conversation = self._factory(self._on_event)
        conversation.barge.rewind = False  # Twilio plays on what it has buffered when a reply pauses
        self.conversation = conversation
        if self.metrics is not None:
            self.metrics.session_opened("twilio")
        log.info("call started", extra={"session": self.id})
        self.link.start_writing()
        self._greet(conversation)
        reason = "client"

        async def watcher_returned(index: int) -> None:
            nonlocal reason
            if index == 0:
                reason = "idle"
                await self.link.close(CLOSE_IDLE, "idle timeout", within_s=1.0)
            elif self._end_reason is not None:
                reason = "policy"
                await self.link.close(CLOSE_POLICY, self._end_reason, within_s=1.0)
            else:
                await self.link.close(1000, "call ended", within_s=1.0)

        try:
            await self.link.serve(
                self._receive, self._watch_idle(), self._ended.wait(), on_watcher=watcher_returned
            )
            if self.outbox.overflow.is_set():
                reason = "policy"
        finally:
            # 1. Reading (and so taking audio) has stopped.  2. Stop the conversation's work.
            # 3. Stop writing.
            if self._dtmf_timer is not None:
                self._dtmf_timer.cancel()
            await conversation.aclose()
            await self.link.stopped_writing()
            if self.metrics is not None:
                self.metrics.session_closed("twilio", reason)
            log.info(
                "call ended",
                extra={"session": self.id, "reason": reason, "first_media_ms": self.first_audio_ms},
            )

    async def _authenticate(self) -> tp.StartInfo | None:
        """``connected`` (optional), then ``start`` with the webhook's token, within
        ``start_timeout_s``; else the socket is closed and None returned."""
        start: tp.Start | None = None
        try:
            async with asyncio.timeout(self.settings.start_timeout_s):
                while start is None:
                    text = await self._receive_text()
                    if text is None:
                        return None
                    try:
                        message = tp.parse(text)
                    except tp.TwilioProtocolError as exc:
                        await self._refuse(CLOSE_POLICY, exc.code)
                        return None
                    if isinstance(message, tp.Start):
                        start = message
                    elif not isinstance(message, tp.Connected):
                        await self._refuse(CLOSE_POLICY, "start_expected")
                        return None
        except TimeoutError:
            await self._refuse(CLOSE_POLICY, "start_timeout")
            return None
        self.started_at = time.monotonic()
        info = start.start
        fmt = info.media_format
        if (fmt.encoding, fmt.sample_rate, fmt.channels) != ("audio/x-mulaw", mulaw.RATE, 1):
            await self._refuse(CLOSE_POLICY, "unsupported_media_format")
            return None
        token = info.custom_parameters.get("token")
        if not token:
            await self._refuse(CLOSE_UNAUTHORIZED, "missing_token")
            return None
        try:
            await self._tokens.verify(token, kind=TOKEN_KIND, session_id=info.call_sid)
        except TokenError as exc:
            code = CLOSE_TRY_AGAIN if exc.code == "token_store_unavailable" else CLOSE_UNAUTHORIZED
            await self._refuse(code, exc.code)
            return None
        return info

    async def _refuse(self, code: int, reason: str) -> None:
        log.info("call refused before it started", extra={"session": self.id, "reason": reason})
        if self.metrics is not None:
            self.metrics.error("forbidden" if code == CLOSE_UNAUTHORIZED else "invalid_value")
        await self.link.close(code, reason, within_s=1.0)

    async def _receive_text(self) -> str | None:
        """The next text message before the call starts; None when the socket closed. A binary
        frame counts as an unusable message (Twilio sends text only)."""
        while True:
            try:
                message = await self.ws.receive()
            except (WebSocketDisconnect, RuntimeError):
                return None
            if message["type"] == "websocket.disconnect":
                return None
            text = message.get("text")
            if text is not None:
                return str(text)
            self._bad("invalid_message")

    async def drain(self, deadline: float) -> None:
        """Server shutdown: let the turn in progress finish, then close with 1001."""
        conversation = self.conversation
        # Polled: "idle" is derived from several tasks, and this runs once, at shutdown.
        while conversation is not None and not conversation.idle and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        await self.link.flushed(deadline + 1.0)
        await self.link.close(1001, "server is restarting", within_s=1.0)

    async def _watch_idle(self) -> None:
        """Returns once Twilio has sent nothing for idle_timeout_s while no reply is running
        (a live call sends media every 20 ms, silence included)."""
        while True:
            now = time.monotonic()
            if self.idle.expired(now):
                if self.conversation is None or self.conversation.idle:
                    log.info("closing an idle call", extra={"session": self.id})
                    return
                self.idle.touch(now)
            await asyncio.sleep(self.idle.remaining(time.monotonic()) + 0.01)

    def _end(self, reason: str | None) -> None:
        """End the call: ``reason`` None for Twilio's ``stop``, else why it is closed."""
        if not self._ended.is_set():
            self._end_reason = reason
            self._ended.set()

    # -- from Twilio ---------------------------------------------------------------------

    async def _receive(self, message: Message) -> None:
        self.idle.touch(time.monotonic())
        text = message.get("text")
        try:
            if text is None:
                raise tp.TwilioProtocolError("invalid_message", "binary frame")
            parsed = tp.parse(text)
            match parsed:
                case tp.Media():
                    if parsed.media.track in INBOUND_TRACKS:
                        await self._audio(parsed.audio())
                case tp.Mark():
                    self.ledger.played(parsed.mark.name)
                case tp.Dtmf():
                    self._digit(parsed.dtmf.digit)
                case tp.Stop():
                    self._end(None)
                case tp.Start() | tp.Connected():
                    raise tp.TwilioProtocolError("invalid_message", "the stream has already started")
        except tp.TwilioProtocolError as exc:
            self._bad(exc.code)
            if self.bad_messages > MAX_BAD_MESSAGES:
                self._end("too many malformed messages")

    def _bad(self, code: str) -> None:
        self.bad_messages += 1
        if self.bad_messages <= 3 or self.bad_messages % 100 == 0:
            log.info("ignored a message from Twilio", extra={"session": self.id, "code": code})
        if self.metrics is not None:
            self.metrics.error("invalid_value")

    async def _audio(self, ulaw: bytes) -> None:
        if not ulaw or self.conversation is None:
            return
        pcm = mulaw.decode(ulaw)
        pause = self.throttle.push(pcm, time.monotonic())
        if pause:
            await asyncio.sleep(pause)
        try:
            if self.echo is not None:
                pcm = await self.echo.heard(pcm)
            await self.conversation.push_audio(pcm)
        except Exception:
            log.exception("audio processing failed", extra={"session": self.id})

    def _digit(self, digit: str) -> None:
        if self.settings.dtmf == "ignore":
            self.dtmf.received += 1
            return
        entry = self.dtmf.push(digit, time.monotonic())
        if self._dtmf_timer is not None:
            self._dtmf_timer.cancel()
            self._dtmf_timer = None
        if entry is not None:
            self._keypad(entry)
        else:
            loop = asyncio.get_running_loop()
            self._dtmf_timer = loop.call_later(self.dtmf.gap_s + 0.01, self._digits_due)

    def _digits_due(self) -> None:
        self._dtmf_timer = None
        entry = self.dtmf.due(time.monotonic())
        if entry is not None:
            self._keypad(entry)

    def _keypad(self, digits: str) -> None:
        """Keypad digits are the caller's words: like speech, they cut a reply short (``clear``)
        and are answered at once."""
        conversation = self.conversation
        if conversation is None:
            return
        log.info("keypad entry", extra={"session": self.id, "digits": len(digits)})
        conversation.cancel_response()
        if self._active is not None:
            # The cut reply enters the history when it ends; the digits follow it there.
            self._keys_waiting.append(digits)
        else:
            self._answer_keys([digits])

    def _answer_keys(self, entries: list[str]) -> None:
        conversation = self.conversation
        if conversation is None:
            return
        for digits in entries:
            conversation.add_item(Item(new_id("item"), "message", role="user", text=as_text(digits)))
        if not conversation.responding:
            conversation.create_response()

    # -- the greeting ------------------------------------------------------------------------

    def _greet(self, conversation: Conversation) -> None:
        mode = self.settings.greeting_mode
        if mode == "llm" and self.llm_status.mode == "llm":
            # The prompt stays in the history as the call's first (user) turn: the LLM greets
            # in answer to it, and later turns see that the call began with a greeting.
            conversation.add_item(
                Item(new_id("item"), "message", role="user", text=self.settings.greeting_prompt)
            )
            conversation.create_response()
        elif mode != "none" and self.settings.greeting.strip():
            conversation.say(self.settings.greeting)

    # -- to Twilio -----------------------------------------------------------------------

    def _on_event(self, event: ev.Event) -> None:
        if self.metrics is not None:
            self.metrics.observe(event)
        match event:
            case ev.ResponseStarted(response_id, item_id, _mode):
                self._active = (response_id, item_id)
                self._item_sent_ms = 0.0
            case ev.ResponseAudio(response_id, item_id, pcm):
                self._send_audio(response_id, item_id, pcm)
            case ev.OutputCleared(response_id, item_id):
                self._clear(response_id, item_id)
            case ev.SpeechStarted() if self.ledger.unplayed:
                # The reply has been sent in full, but Twilio is still playing its end.
                self._clear(None, None)
            case ev.ResponseDone(_response_id, item_id):
                self._active = None
                if item_id in self._cut_at_done:
                    self._cut_at_done.discard(item_id)
                    self._cut(item_id)
                if self._keys_waiting:
                    keys, self._keys_waiting = self._keys_waiting, []
                    asyncio.get_running_loop().call_soon(self._answer_keys, keys)
            case ev.TranscriptFailed() if self.metrics is not None:
                self.metrics.error("transcription_failed")
            case ev.ConversationError(code) if self.metrics is not None:
                self.metrics.error(code)

    def _send_audio(self, response_id: str, item_id: str, pcm: bytes) -> None:
        if self.first_audio_ms is None and self.started_at is not None:
            self.first_audio_ms = round((time.monotonic() - self.started_at) * 1000.0, 1)
            log.info("first audio out", extra={"session": self.id, "first_media_ms": self.first_audio_ms})
        ulaw = mulaw.encode(pcm)
        if self.echo is not None:
            self.echo.played(mulaw.decode(ulaw))  # what the caller hears, μ-law's loss included
        for frame in mulaw.frames(ulaw):
            self.outbox.put(tp.media(self.stream_sid, frame), audio_of=response_id)
        self._item_sent_ms += len(ulaw) * 1000.0 / mulaw.RATE
        name = self.ledger.sent(item_id, int(self._item_sent_ms))
        self.outbox.put(tp.mark(self.stream_sid, name), audio_of=response_id)

    def _clear(self, response_id: str | None, item_id: str | None) -> None:
        """Barge-in: drop the reply audio not yet sent, empty Twilio's buffer, and keep in the
        history only what the marks say was heard."""
        if response_id is not None:
            self.outbox.drop_audio(response_id)
        self.outbox.put(tp.clear(self.stream_sid))
        if self.echo is not None:
            self.echo.clear()
        items = self.ledger.cleared()
        if item_id is not None and item_id not in items:
            items.append(item_id)
        active = self._active[1] if self._active is not None else None
        for item in items:
            if item == active:
                self._cut_at_done.add(item)  # its ResponseDone has yet to record it
            else:
                self._cut(item)

    def _cut(self, item_id: str) -> None:
        if self.conversation is None:
            return
        with contextlib.suppress(PipelineError):  # an item already forgotten
            self.conversation.truncate(item_id, self.ledger.heard_ms(item_id))
