"""create_app(settings) -> FastAPI: the routes and middleware. The lifespan opens the shared
services (``hark.services``) once and hands them to every transport."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from importlib import resources

from fastapi import Depends, FastAPI, WebSocket
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.routing import Mount

from hark import __version__
from hark.admission import Admission, refuse
from hark.assembly import Prebuilt
from hark.config import Settings
from hark.drain import Drainer
from hark.engines import aec
from hark.engines.base import TTS
from hark.observability.jsonlog import session_scope
from hark.observability.metrics import Metrics, metrics_router
from hark.observability.tracing import TurnTracer
from hark.pipeline import events as ev
from hark.pipeline.conversation import Conversation, ConversationConfig
from hark.pipeline.interruptions import DEFAULT_BACKCHANNELS, InterruptionPolicy
from hark.pipeline.tools import Toolbox
from hark.pipeline.turns import Eagerness, TurnConfig
from hark.security import HandshakeGuard, Security, client_secrets_router, is_loopback, principal_of
from hark.security.access import declare, declare_api_docs, public, session_token
from hark.security.body import BodyLimit
from hark.security.cors import CallsCors
from hark.security.headers import SecurityHeaders
from hark.services import Services, open_services, running
from hark.sessionstore import StoreUnavailable, build_store
from hark.sessionstore.resume import OwnedStore
from hark.transports import admin, openai_http
from hark.transports import meetings as meetings_transport
from hark.transports.realtime import SAMPLE_RATE, RealtimeSession
from hark.transports.tts_session import TTSSession
from hark.transports.twilio import routes as twilio
from hark.transports.webrtc.routes import Calls

log = logging.getLogger("hark.app")

STATIC_DIR = resources.files("hark") / "web" / "static"


def conversation_config(settings: Settings) -> ConversationConfig:
    vad = settings.vad
    return ConversationConfig(
        system_prompt=settings.conversation.system_prompt,
        history_turns=settings.conversation.history_turns,
        turn=TurnConfig(
            threshold=vad.threshold,
            neg_threshold=vad.neg_threshold,
            start_ms=vad.start_ms,
            end_silence_ms=vad.end_silence_ms,
            max_turn_ms=vad.max_turn_s * 1000,
            eagerness=Eagerness(vad.eagerness) if vad.turn_detection == "semantic_vad" else None,
            words_min_logprob=vad.semantic_min_logprob,
            words_doubt_ms=vad.semantic_doubt_ms,
        ),
        prefix_ms=vad.prefix_ms,
        max_turn_s=vad.max_turn_s,
        partial_interval_ms=settings.stt.partial_interval_ms,
        output_chunk_ms=settings.conversation.output_chunk_ms,
        output_lead_ms=settings.conversation.output_lead_ms,
        speculative_transcript=settings.conversation.speculative_transcript,
        speculative_reply=settings.conversation.speculative_reply,
        first_clause_words=settings.conversation.first_clause_words,
        language=settings.stt.language,
        interruptions=InterruptionPolicy(
            backchannels=vad.backchannels,
            phrases=tuple(vad.backchannel_words)
            if vad.backchannel_words is not None
            else DEFAULT_BACKCHANNELS,
            confirm_ms=vad.interruption_confirm_ms,
            self_speech=vad.self_speech_guard,
            min_logprob=vad.interruption_min_logprob,
        ),
    )


def create_app(
    settings: Settings, *, prebuilt: Prebuilt | None = None, drainer: Drainer | None = None
) -> FastAPI:
    """``drainer``: the server's (``hark serve`` drains it on SIGTERM); a new one by default."""
    # Built here, not in the lifespan, so the guard can share it (it connects lazily).
    store = build_store(settings)
    shared = store if settings.redis.url is not None and settings.redis.url.get_secret_value() else None
    security = Security.from_settings(settings, store=shared)
    # The Realtime WebSocket cancels echo only when asked (audio.echo_cancellation: on).
    echo_cancelled = settings.audio.echo_cancelled(aec.available(), by_default=False)
    drainer = drainer or Drainer(settings.security.drain_timeout_s)
    admission = Admission(settings.admission)
    started_at = time.time()
    metrics = Metrics(
        lambda: services.engines if (services := running(app.state)) is not None else None,
        tracer=TurnTracer.from_endpoint(settings.observability.otel_endpoint),
    )
    phone = (
        twilio.PhoneLine(
            settings,
            security,
            lambda tts, rate: make_conversation(live(), settings, tts=tts, sample_rate=rate),
        )
        if settings.twilio.enabled
        else None
    )
    serving = False  # from the end of start-up to the start of shutdown: /ready's "models"

    def live() -> Services:
        """The services, once the lifespan has opened them."""
        services = running(app.state)
        if services is None:
            raise RuntimeError("hark's services are not running (the app's lifespan has not started)")
        return services

    calls = Calls(
        settings,
        security,
        lambda rate: make_conversation(
            live(), settings, sample_rate=rate, coded_tail_ms=settings.webrtc.codec_tail_ms
        ),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        nonlocal serving
        async with open_services(
            settings,
            prebuilt=prebuilt,
            security=security,
            store=store,
            metrics=metrics,
            drainer=drainer,
            admission=admission,
            started_at=started_at,
        ) as services:
            app.state.services = services
            wyoming_server = None
            if settings.wyoming.enabled:
                from hark.transports import wyoming

                wyoming_server = wyoming.WyomingServer(
                    settings, wyoming.services(settings, services.engines, metrics)
                )
                await wyoming_server.start()
            if phone is not None:
                await phone.warm(services.engines.tts)
            serving = True
            yield
            serving = False
            # Sessions have closed with their sockets (after the drain); Wyoming connections
            # finish the request in progress and close. Then the services stop (open_services).
            await calls.aclose()
            if wyoming_server is not None:
                await wyoming_server.stop(settings.security.drain_timeout_s)

    docs = api_docs(settings)
    app = FastAPI(
        title="hark",
        version=__version__,
        lifespan=lifespan,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        openapi_url="/openapi.json" if docs else None,
    )
    declare_api_docs(app)
    app.include_router(metrics_router(metrics))
    page = public("the browser pages and their scripts: they hold no secrets, and ask for a key")
    app.routes.append(declare(Mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static"), page))
    app.include_router(admin.router)
    app.include_router(openai_http.router)
    app.include_router(meetings_transport.router)
    app.include_router(client_secrets_router(security.tokens))
    if phone is not None:
        app.include_router(phone.router)
    if settings.webrtc.enabled:
        app.include_router(calls.router)
    openai_http.install_error_handlers(app)

    @app.get("/", include_in_schema=False, dependencies=[Depends(page)])
    async def index() -> FileResponse:
        return FileResponse(str(STATIC_DIR / "index.html"), headers={"Cache-Control": "no-cache"})

    @app.get("/meeting", include_in_schema=False, dependencies=[Depends(page)])
    async def meeting_page() -> FileResponse:
        return FileResponse(str(STATIC_DIR / "meeting.html"), headers={"Cache-Control": "no-cache"})

    probe = public("load balancers and orchestrators probe it without credentials; it names no secrets")

    @app.get("/health", dependencies=[Depends(probe)])
    async def health() -> JSONResponse:
        status = live().llm_status
        return JSONResponse({"status": "ok", "version": __version__, "llm": {"mode": status.mode}})

    @app.get("/ready", dependencies=[Depends(probe)])
    async def ready() -> JSONResponse:
        checks = {
            "models": serving,
            "accepting": not drainer.draining,
            "capacity": admission.check() is None,
        }
        pool = live().engines.pool if checks["models"] else None
        if pool is not None:
            checks["workers"] = pool.ready
        if settings.redis.url is not None and checks["models"]:
            try:
                await store.ping()
                checks["redis"] = True
            except StoreUnavailable:
                checks["redis"] = False
        status = 200 if all(checks.values()) else 503
        return JSONResponse({"ready": status == 200, "checks": checks}, status_code=status)

    @app.websocket("/v1/tts/sessions", dependencies=[Depends(session_token("tts"))])
    async def tts_sessions(websocket: WebSocket) -> None:
        await websocket.accept()
        limit = settings.security.outbound_buffer_bytes
        await TTSSession(websocket, live().engines.tts, limit_bytes=limit).run()

    @app.websocket("/v1/realtime", dependencies=[Depends(session_token("realtime"))])
    async def realtime(websocket: WebSocket) -> None:
        if (refusal := admission.enter()) is not None:
            metrics.admission_refused(refusal.reason)
            return await refuse(websocket, refusal)
        try:
            await serve_realtime(websocket)
        finally:
            admission.leave()

    async def serve_realtime(websocket: WebSocket) -> None:
        if (call_id := websocket.query_params.get("call_id")) is not None:
            return await calls.sideband(websocket, call_id)
        offered = websocket.scope.get("subprotocols") or []
        await websocket.accept(subprotocol="realtime" if "realtime" in offered else None)
        if drainer.draining:
            await websocket.close(code=1013, reason="server is draining; try again shortly")
            return
        model = websocket.query_params.get("model") or "hark"
        principal = principal_of(websocket.scope)
        services = live()
        session = RealtimeSession(
            websocket,
            make_conversation(services, settings),
            services.llm_status,
            model,
            store=OwnedStore(store, principal.owner if principal is not None else "anonymous"),
            resume_ttl_s=settings.redis.resume_ttl_s,
            metrics=metrics,
            session_id=principal.session_id if principal is not None else None,
            limits=settings.security,
            echo=aec.EchoCanceller(SAMPLE_RATE) if echo_cancelled else None,
        )
        with session_scope(session.id):
            log.info("session opened", extra={"session": session.id})
            metrics.session_opened("realtime")
            drainer.register(session)
            reason = "client"
            try:
                await session.run()
            except Exception:
                reason = "error"
                raise
            finally:
                drainer.unregister(session)
                metrics.session_closed("realtime", "shutdown" if drainer.draining else reason)
                log.info("session closed", extra={"session": session.id})

    # Inside the guard: a body is counted only once its request is authenticated.
    app.add_middleware(BodyLimit, settings=settings)
    app.add_middleware(SecurityHeaders)
    # Outermost of the app's own middleware: every upgrade is checked before any route accepts it.
    app.add_middleware(HandshakeGuard, settings=settings, security=security, routes=app.routes)
    if settings.webrtc.enabled:
        # Outside the guard: a cross-origin preflight carries no credentials (security/cors.py).
        app.add_middleware(CallsCors, allowed_origins=settings.security.allowed_origins)
    return app


def api_docs(settings: Settings) -> bool:
    """Whether /docs, /redoc and /openapi.json are served: as ``server.api_docs`` says, by
    default only on loopback (they describe every route to whoever asks)."""
    enabled = settings.server.api_docs
    return is_loopback(settings.server.host) if enabled is None else enabled


def make_conversation(
    services: Services,
    settings: Settings,
    *,
    tts: TTS | None = None,
    sample_rate: int | None = None,
    coded_tail_ms: float = 0.0,
) -> Callable[[Callable[[ev.Event], None]], Conversation]:
    """``tts``, ``sample_rate`` (audio in and out) and ``coded_tail_ms`` (``TurnConfig``): a
    transport's own, e.g. the phone's 8 kHz, a call's Opus."""
    engines = services.engines
    rate = sample_rate or 24_000
    config = conversation_config(settings)
    if coded_tail_ms:
        turn = dataclasses.replace(config.turn, coded_tail_ms=coded_tail_ms)
        config = dataclasses.replace(config, turn=turn)

    tools = Toolbox.from_names(settings.conversation.tools) if settings.conversation.tools else None

    def factory(emit: Callable[[ev.Event], None]) -> Conversation:
        return Conversation(
            vad=engines.vad,
            stt=engines.stt,
            tts=tts or engines.tts,
            llm=engines.llm,
            config=config,
            emit=emit,
            input_rate=rate,
            output_rate=rate,
            tools=tools,
            turn_model=engines.turn,
        )

    return factory
