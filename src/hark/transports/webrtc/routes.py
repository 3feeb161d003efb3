"""``POST /v1/realtime/calls`` (an SDP offer in, the answer out), its hang-up, and the calls in
progress (for the hang-up and the sideband WebSocket ``/v1/realtime?call_id=``).

Authorised like every ``/v1/`` route by the guard: an API key, or here also a single-use client
secret from ``/v1/realtime/client_secrets``. A call holds a session slot and an admission place
for its whole life, like a WebSocket session, and is refused the same way (503) past them, while
the server drains, or from an Origin not on the allow-list (403)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable

from fastapi import APIRouter, Depends, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import Response
from prometheus_client import Counter
from starlette.datastructures import UploadFile

from hark.admission import Admission
from hark.config import Settings
from hark.drain import Drainer
from hark.engines import aec
from hark.observability.jsonlog import session_scope
from hark.observability.metrics import Metrics
from hark.pipeline import events as ev
from hark.pipeline.conversation import Conversation, new_id
from hark.security import Security, origin_allowed, principal_of
from hark.security.access import API_KEY, session_token
from hark.security.auth import ANONYMOUS
from hark.security.slots import SessionSlot
from hark.services import services_of
from hark.transports import realtime_protocol as rp
from hark.transports.webrtc import sdp
from hark.transports.webrtc.call import Call
from hark.transports.webrtc.media import RATE
from hark.transports.webrtc.sdp import CallError, Offer
from hark.transports.webrtc.session import CallSession

log = logging.getLogger("hark.webrtc")

CALLS_PATH = "/v1/realtime/calls"
SETUP_FAILURES = ("invalid_offer", "connect_timeout", "ice_gathering_timeout", "gather_fallback")
ConversationMaker = Callable[[int], Callable[[Callable[[ev.Event], None]], Conversation]]
"""(sample rate) → a conversation factory, once the engines are loaded."""


class Calls:
    """The calls in progress, and the routes that make and end them (``router``)."""

    def __init__(self, settings: Settings, security: Security, conversations: ConversationMaker) -> None:
        self.settings = settings
        self.security = security
        self.conversations = conversations
        # Off under auto: browsers cancel their own echo (docs/turn-taking.md "Echo").
        self.echo_cancelled = settings.audio.echo_cancelled(aec.available(), by_default=False)
        self.calls: dict[str, Call] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._failures: Counter | None = None
        self.router = self._routes()

    def failures(self, metrics: Metrics) -> Counter:
        if self._failures is None:
            self._failures = Counter(
                "hark_webrtc_setup_failed",
                "WebRTC calls that failed to set up, by reason (connect_timeout: ICE/DTLS never"
                " completed; gather_fallback: answered with host candidates only).",
                ["reason"],
                registry=metrics.registry,
            )
            for reason in SETUP_FAILURES:
                self._failures.labels(reason)
        return self._failures

    def _routes(self) -> APIRouter:
        routes = APIRouter()

        @routes.post(
            CALLS_PATH,
            status_code=201,
            response_class=Response,
            dependencies=[Depends(session_token("realtime"))],
        )
        async def create_call(request: Request) -> Response:
            metrics = services_of(request).metrics
            try:
                return await self.create(request)
            except CallError as exc:
                if exc.code in SETUP_FAILURES:
                    self.failures(metrics).labels(exc.code).inc()
                log.info("call refused", extra={"status": exc.status, "reason": exc.code})
                return exc.response()

        @routes.post(CALLS_PATH + "/{call_id}/hangup", response_class=Response, dependencies=[API_KEY])
        async def hang_up(call_id: str, request: Request) -> Response:
            call = self.calls.get(call_id)
            if call is None or call.owner != (principal_of(request.scope) or ANONYMOUS).owner:
                return CallError(404, "no such call", "call_not_found").response()
            call.socket.hang_up("hangup")
            return Response(status_code=200)

        return routes

    # -- a new call -----------------------------------------------------------------------

    async def create(self, request: Request) -> Response:
        state = services_of(request)
        if not origin_allowed(
            request.headers.get("origin"), request.headers.get("host"), self.settings.security.allowed_origins
        ):
            raise CallError(403, "this origin may not make calls", "origin_not_allowed")
        offer = await read_offer(request)
        drainer = state.drainer
        if drainer.draining:
            raise CallError(503, "server is draining; try again shortly", "server_busy")
        admission = state.admission
        if (refusal := admission.enter()) is not None:
            state.metrics.admission_refused(refusal.reason)
            raise CallError(503, refusal.message, "server_busy")
        slot = self.security.cap.acquire()
        if slot is None:
            admission.leave()
            raise CallError(503, "the server is at its session limit", "server_busy")
        try:
            return await self._start(request, offer, slot)
        except BaseException:
            slot.release()
            admission.leave()
            raise

    async def _start(self, request: Request, offer: Offer, slot: SessionSlot) -> Response:
        state = services_of(request)
        principal = principal_of(request.scope) or ANONYMOUS
        metrics = state.metrics
        config = session_config(offer.session)
        call = Call(new_id("rtc"), principal.owner, self.settings.webrtc)
        try:
            answer = await call.answer(offer.sdp)
        except BaseException:  # refused, or the request went away: nothing may stay open
            await asyncio.shield(call.abandon())
            raise
        if call.gather_fallback:
            self.failures(metrics).labels("gather_fallback").inc()
        model = request.query_params.get("model") or str((offer.session or {}).get("model") or "hark")
        # hark's own hark.* events are opt-in on the calls route as on the WebSocket (the
        # session reads its socket's query); audio=binary has no meaning here (audio is the track).
        if (hark_events := request.query_params.get("hark_events")) is not None:
            call.socket.query_params["hark_events"] = hark_events
        session = CallSession(
            call.socket,
            self.conversations(RATE),
            state.llm_status,
            model,
            track=call.track,
            session_id=principal.session_id or new_id("sess"),
            metrics=metrics,
            limits=self.settings.security,
            echo=aec.EchoCanceller(RATE) if self.echo_cancelled else None,
        )
        if config is not None:
            try:
                session.settings.apply(config, session.conversation)
            except Exception as exc:
                await session.conversation.aclose()
                await call.abandon()
                raise CallError(400, str(exc)[:200], "invalid_session", param="session") from None
        self.calls[call.id] = call
        task = asyncio.create_task(self._run(call, session, slot, state.admission, state.drainer, metrics))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        headers = {"Location": f"{CALLS_PATH}/{call.id}", "Cache-Control": "no-store"}
        return Response(answer, status_code=201, media_type=sdp.SDP, headers=headers)

    async def _run(
        self,
        call: Call,
        session: CallSession,
        slot: SessionSlot,
        admission: Admission,
        drainer: Drainer,
        metrics: Metrics,
    ) -> None:
        with session_scope(session.id):
            log.info("call opened", extra={"session": session.id, "call": call.id})
            metrics.session_opened("webrtc")
            drainer.register(session)
            reason = "client"
            try:
                await call.run(session, lambda: self.failures(metrics).labels("connect_timeout").inc())
            except Exception:
                reason = "error"
                log.exception("call failed", extra={"call": call.id})
            finally:
                drainer.unregister(session)
                self.calls.pop(call.id, None)
                slot.release()
                admission.leave()
                if reason != "error":
                    reason = close_reason(call.end_reason, drainer.draining)
                metrics.session_closed("webrtc", reason)
                log.info("call closed", extra={"session": session.id, "call": call.id, "reason": reason})

    # -- the sideband -----------------------------------------------------------------------

    async def sideband(self, websocket: WebSocket, call_id: str) -> None:
        """``/v1/realtime?call_id=``: an app server watches and steers a call with its API key
        (a client secret is the browser's and cannot open it)."""
        principal = principal_of(websocket.scope) or ANONYMOUS
        call = self.calls.get(call_id)
        if principal.kind == "token" or call is None or call.owner != principal.owner:
            await websocket.close(code=1008, reason="no such call for this key")
            return
        await websocket.accept()
        call.socket.sidebands.add(websocket)
        try:
            while not call.socket.closed.is_set():
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                text = message.get("text")
                if text is not None:
                    call.socket.deliver(text)
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            call.socket.sidebands.discard(websocket)

    async def aclose(self) -> None:
        for call in list(self.calls.values()):
            call.socket.hang_up("shutdown")
        await asyncio.gather(*self._tasks, return_exceptions=True)


def close_reason(end_reason: str | None, draining: bool) -> str:
    if draining:
        return "shutdown"
    if end_reason == "connect_timeout":
        return "timeout"
    if end_reason == "idle timeout":
        return "idle"
    if end_reason in ("too many events", "client too slow"):
        return "policy"
    return "client"


def session_config(session: dict[str, object] | None) -> rp.SessionConfig | None:
    if session is None:
        return None
    try:
        event = rp.parse_client_event(json.dumps({"type": "session.update", "session": session}))
    except rp.ProtocolError as exc:
        raise CallError(400, exc.message[:200], "invalid_session", param="session") from None
    assert isinstance(event, rp.SessionUpdate)
    return event.session


async def read_offer(request: Request) -> Offer:
    kind = sdp.media_type(request.headers.get("content-type"))
    if kind == sdp.SDP:
        body = await request.body()
        if len(body) > sdp.MAX_OFFER_BYTES:
            raise CallError(400, "the SDP offer is too large", "invalid_offer", param="sdp")
        return Offer(sdp.check_offer(body.decode("utf-8", "replace")), None)
    if kind == sdp.MULTIPART:
        form = await request.form(max_files=2, max_fields=4, max_part_size=sdp.MAX_OFFER_BYTES)
        parts: dict[str, str | None] = {}
        for name in ("sdp", "session"):
            value = form.get(name)
            if isinstance(value, UploadFile):
                parts[name] = (await value.read(sdp.MAX_OFFER_BYTES + 1)).decode("utf-8", "replace")
            else:
                parts[name] = value
        await form.close()
        if not parts["sdp"]:
            raise CallError(400, "the form has no sdp part", "invalid_offer", param="sdp")
        return Offer(sdp.check_offer(parts["sdp"]), sdp.session_part(parts["session"]))
    raise sdp.unsupported(request.headers.get("content-type"))
