"""``POST /twilio/voice`` (the incoming-call webhook) and the WebSocket ``/twilio/stream``.

The webhook checks Twilio's signature (when ``twilio.auth_token`` is set) and answers TwiML that
connects the call to the stream, with a single-use token, bound to the call, as a stream
parameter (Twilio's stream URLs take no query string, and parameters stay out of access logs).
The stream's first messages must carry that token before any conversation, and so any paid
engine, starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable
from urllib.parse import parse_qsl, urlsplit, urlunsplit
from xml.sax.saxutils import quoteattr

from fastapi import APIRouter, Depends, Request, WebSocket
from fastapi.responses import PlainTextResponse, Response

from hark.config import Settings
from hark.engines import aec
from hark.engines.base import TTS
from hark.errors import ConfigError
from hark.observability.jsonlog import session_scope
from hark.security import Security, is_loopback, scope_for
from hark.security.access import in_band, public
from hark.services import services_of
from hark.transports.twilio import mulaw, signature
from hark.transports.twilio.greeting import PhraseCache, sentences
from hark.transports.twilio.session import TOKEN_KIND, ConversationFactory, PhoneSession

log = logging.getLogger("hark.twilio")

VOICE_PATH = "/twilio/voice"
STREAM_PATH = "/twilio/stream"
MAX_WEBHOOK_BYTES = 64 * 1024
"""Twilio's voice webhook sends a few dozen short parameters."""
CALL_SID = re.compile(r"^CA[0-9a-fA-F]{32}$")
TWIML = "application/xml"
WARM_TIMEOUT_S = 10.0
"""Start-up waits at most this long for the greeting's audio (calls synthesise it otherwise)."""


def twiml_connect(stream_url: str, token: str) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        "<Response><Connect>"
        f"<Stream url={quoteattr(stream_url)}>"
        f'<Parameter name="token" value={quoteattr(token)} />'
        "</Stream></Connect></Response>"
    )


def twiml_busy() -> str:
    return '<?xml version="1.0" encoding="UTF-8"?><Response><Reject reason="busy" /></Response>'


def stream_url(public_url: str | None, request: Request) -> str:
    base = public_url or str(request.base_url).rstrip("/")
    parts = urlsplit(base)
    scheme = "wss" if parts.scheme in ("https", "wss") else "ws"
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + STREAM_PATH, "", ""))


def signed_url(public_url: str | None, request: Request) -> str:
    """The URL Twilio requested: the public one (behind a proxy), with this request's path and
    query, or the request's own."""
    if public_url is None:
        return str(request.url)
    query = request.url.query
    return public_url.rstrip("/") + request.url.path + (f"?{query}" if query else "")


async def read_body(request: Request, limit: int) -> bytes | None:
    """The body, or None once it passes ``limit`` bytes (read no further)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


ConversationMaker = Callable[[TTS, int], ConversationFactory]
"""(TTS, sample rate) → a conversation factory, once the engines are loaded."""


class PhoneLine:
    """The webhook and stream routes (``router``), and the greeting's kept audio."""

    def __init__(self, settings: Settings, security: Security, conversations: ConversationMaker) -> None:
        config = settings.twilio
        auth_token = config.token()
        if auth_token is None and not is_loopback(settings.server.host):
            raise ConfigError(
                f"twilio is enabled and hark is bound to {settings.server.host}, which is not loopback, "
                "but twilio.auth_token is not set (HARK_TWILIO_AUTH_TOKEN): anyone could start paid calls"
            )
        self.settings = settings
        self._cache: PhraseCache | None = None
        self.router = _routes(settings, security, conversations, auth_token, self.tts)

    def tts(self, engines_tts: TTS) -> TTS:
        """The TTS calls speak with: the configured one, with the fixed greeting kept."""
        config = self.settings.twilio
        if config.greeting_mode != "text" or not config.greeting.strip():
            return engines_tts
        if self._cache is None:
            self._cache = PhraseCache(engines_tts, sentences(config.greeting))
        return self._cache

    async def warm(self, engines_tts: TTS, timeout_s: float = WARM_TIMEOUT_S) -> None:
        """At start-up: synthesise the greeting now, so that the first call's is kept too."""
        tts = self.tts(engines_tts)
        if isinstance(tts, PhraseCache):
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):
                    await tts.fill()


def _routes(
    settings: Settings,
    security: Security,
    conversations: ConversationMaker,
    auth_token: str | None,
    call_tts: Callable[[TTS], TTS],
) -> APIRouter:
    config = settings.twilio
    routes = APIRouter()
    echo_cancelled = settings.audio.echo_cancelled(aec.available())

    @routes.post(
        VOICE_PATH,
        include_in_schema=False,
        dependencies=[Depends(public("Twilio cannot send an API key; it signs the request, checked below"))],
    )
    async def incoming_call(request: Request) -> Response:
        body = await read_body(request, MAX_WEBHOOK_BYTES)
        if body is None:
            return PlainTextResponse("request body too large", status_code=413)
        params = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
        if auth_token is not None:
            url = signed_url(config.public_url, request)
            if not signature.valid(auth_token, url, params, request.headers.get("x-twilio-signature")):
                log.info(
                    "webhook refused", extra={"path": VOICE_PATH, "status": 403, "reason": "bad_signature"}
                )
                return PlainTextResponse("invalid X-Twilio-Signature", status_code=403)
        call_sid = dict(params).get("CallSid", "")
        if not CALL_SID.match(call_sid):
            return PlainTextResponse("CallSid missing or malformed", status_code=400)
        services = services_of(request)
        drainer = services.drainer
        if drainer.draining or security.cap.current >= security.cap.limit:
            log.info("call rejected: busy", extra={"draining": drainer.draining})
            return Response(twiml_busy(), media_type=TWIML)
        tts = call_tts(services.engines.tts)
        if isinstance(tts, PhraseCache):
            tts.prime()  # while Twilio connects the stream
        minted = security.tokens.mint(scope_for(TOKEN_KIND, call_sid), ttl=config.token_ttl_s)
        return Response(
            twiml_connect(stream_url(config.public_url, request), minted.value),
            media_type=TWIML,
            headers={"Cache-Control": "no-store"},
        )

    @routes.websocket(
        STREAM_PATH,
        dependencies=[
            Depends(in_band("Twilio cannot present one; the start message carries a single-use token"))
        ],
    )
    async def stream(websocket: WebSocket) -> None:
        await websocket.accept()
        state = services_of(websocket)
        drainer = state.drainer
        if drainer.draining:
            await websocket.close(code=1013, reason="server is draining; try again shortly")
            return
        session = PhoneSession(
            websocket,
            conversations(call_tts(state.engines.tts), mulaw.RATE),
            tokens=security.tokens,
            settings=config,
            limits=settings.security,
            llm_status=state.llm_status,
            metrics=state.metrics,
            echo=aec.EchoCanceller(mulaw.RATE) if echo_cancelled else None,
        )
        with session_scope(session.id):
            drainer.register(session)
            try:
                await session.run()
            finally:
                drainer.unregister(session)

    return routes
