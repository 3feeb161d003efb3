"""create_app(settings) -> FastAPI. The lifespan loads the engines once and shares them."""

from __future__ import annotations

import asyncio
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
from hark.config import Settings
from hark.drain import Drainer
from hark.engines.base import TTS
from hark.engines.loader import ECHO_SETTING, Engines, Prebuilt, assemble, prebuild, warm_up
from hark.errors import EngineError
from hark.meetings.service import MeetingService
from hark.observability.jsonlog import session_scope
from hark.observability.metrics import Metrics
from hark.observability.metrics import router as metrics_router
from hark.observability.tracing import TurnTracer
from hark.pipeline import events as ev
from hark.pipeline.conversation import Conversation, ConversationConfig, LLMStatus
from hark.pipeline.tools import Toolbox
from hark.pipeline.turns import Eagerness, TurnConfig
from hark.security import HandshakeGuard, Security, client_secrets_router, is_loopback, principal_of
from hark.security.access import declare, declare_api_docs, public, session_token
from hark.security.body import BodyLimit
from hark.security.cors import CallsCors
from hark.security.headers import SecurityHeaders
from hark.sessionstore import StoreUnavailable, build_store
from hark.sessionstore.resume import OwnedStore
from hark.transports import admin, openai_http
from hark.transports import meetings as meetings_transport
from hark.transports.realtime import RealtimeSession
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
        ),
        prefix_ms=vad.prefix_ms,
        max_turn_s=vad.max_turn_s,
        partial_interval_ms=settings.stt.partial_interval_ms,
        output_chunk_ms=settings.conversation.output_chunk_ms,
        output_lead_ms=settings.conversation.output_lead_ms,
        speculative_transcript=settings.conversation.speculative_transcript,
        speculative_reply=settings.conversation.speculative_reply,
        language=settings.stt.language,
    )


async def probe_llm(engines: Engines, settings: Settings) -> LLMStatus:
    if engines.llm is None:
        log.warning("no LLM configured; answering in echo mode", extra={"setting": ECHO_SETTING})
        return LLMStatus(
            mode="echo",
            message="No language model is configured, so hark repeats what it hears (echo mode).",
            setting=ECHO_SETTING,
        )
    try:
        await engines.llm.check()
    except EngineError as exc:
        log.warning(
            "LLM not reachable; turns fall back to echo mode until it answers", extra={"error": str(exc)}
        )
        return LLMStatus(
            mode="echo",
            message=f"The language model is not reachable ({exc}); hark answers in echo mode until it is.",
            setting="HARK_LLM_BASE_URL",
        )
    return LLMStatus(mode="llm", message=f"Answering with {settings.llm.model} ({engines.llm.name}).")


def create_app(settings: Settings, *, prebuilt: Prebuilt | None = None) -> FastAPI:
    # Built here, not in the lifespan, so the guard can share it (it connects lazily).
    store = build_store(settings)
    shared = store if settings.redis.url is not None and settings.redis.url.get_secret_value() else None
    security = Security.from_settings(settings, store=shared)
    phone = (
        twilio.PhoneLine(
            settings, security, lambda tts, rate: make_conversation(app, settings, tts=tts, sample_rate=rate)
        )
        if settings.twilio.enabled
        else None
    )

    calls = Calls(settings, security, lambda rate: make_conversation(app, settings, sample_rate=rate))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        built = prebuilt if prebuilt is not None else await asyncio.to_thread(prebuild, settings)
        loaded = await assemble(settings, built)
        await warm_up(loaded)
        app.state.engines = loaded
        app.state.admission.pressure = loaded.pool.pressure if loaded.pool is not None else None
        app.state.llm_status = await probe_llm(loaded, settings)
        app.state.store = store
        app.state.meetings = await MeetingService.create(settings, loaded)
        app.state.wyoming = None
        if settings.wyoming.enabled:
            from hark.transports import wyoming

            app.state.wyoming = wyoming.WyomingServer(
                settings, wyoming.services(settings, loaded, app.state.metrics)
            )
            await app.state.wyoming.start()
        if phone is not None:
            await phone.warm(loaded.tts)
        app.state.ready = True
        yield
        app.state.ready = False
        await calls.aclose()
        # 1. Sessions have closed with their sockets (after the drain); Wyoming connections
        #    finish the request in progress and close.
        if app.state.wyoming is not None:
            await app.state.wyoming.stop(settings.security.drain_timeout_s)
        # 2. Meetings already stopped are processed to the end: their jobs use the engines.
        await app.state.meetings.aclose()
        # 3. The session store, then the models.
        await app.state.store.aclose()
        await loaded.aclose()
        app.state.metrics.close()

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
    app.state.settings = settings
    app.state.metrics = Metrics(
        lambda: getattr(app.state, "engines", None),
        tracer=TurnTracer.from_endpoint(settings.observability.otel_endpoint),
    )
    app.include_router(metrics_router)
    app.state.drainer = Drainer(settings.security.drain_timeout_s)
    app.state.admission = Admission(settings.admission)
    page = public("the browser pages and their scripts: they hold no secrets, and ask for a key")
    app.routes.append(declare(Mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static"), page))
    app.include_router(admin.router)
    app.include_router(openai_http.router)
    app.include_router(meetings_transport.router)
    app.include_router(client_secrets_router(security.tokens))
    app.state.security = security
    if phone is not None:
        app.include_router(phone.router)
    if settings.webrtc.enabled:
        app.include_router(calls.router)
    openai_http.install_error_handlers(app)
    app.state.started_at = time.time()

    @app.get("/", include_in_schema=False, dependencies=[Depends(page)])
    async def index() -> FileResponse:
        return FileResponse(str(STATIC_DIR / "index.html"), headers={"Cache-Control": "no-cache"})

    @app.get("/meeting", include_in_schema=False, dependencies=[Depends(page)])
    async def meeting_page() -> FileResponse:
        return FileResponse(str(STATIC_DIR / "meeting.html"), headers={"Cache-Control": "no-cache"})

    probe = public("load balancers and orchestrators probe it without credentials; it names no secrets")

    @app.get("/health", dependencies=[Depends(probe)])
    async def health() -> JSONResponse:
        status: LLMStatus = app.state.llm_status
        return JSONResponse({"status": "ok", "version": __version__, "llm": {"mode": status.mode}})

    @app.get("/ready", dependencies=[Depends(probe)])
    async def ready() -> JSONResponse:
        checks = {
            "models": bool(getattr(app.state, "ready", False)),
            "accepting": not app.state.drainer.draining,
            "capacity": app.state.admission.check() is None,
        }
        pool = app.state.engines.pool if checks["models"] else None
        if pool is not None:
            checks["workers"] = pool.ready
        if settings.redis.url is not None and checks["models"]:
            try:
                await app.state.store.ping()
                checks["redis"] = True
            except StoreUnavailable:
                checks["redis"] = False
        status = 200 if all(checks.values()) else 503
        return JSONResponse({"ready": status == 200, "checks": checks}, status_code=status)

    @app.websocket("/v1/tts/sessions", dependencies=[Depends(session_token("tts"))])
    async def tts_sessions(websocket: WebSocket) -> None:
        await websocket.accept()
        limit = settings.security.outbound_buffer_bytes
        await TTSSession(websocket, app.state.engines.tts, limit_bytes=limit).run()

    @app.websocket("/v1/realtime", dependencies=[Depends(session_token("realtime"))])
    async def realtime(websocket: WebSocket) -> None:
        admission: Admission = app.state.admission
        if (refusal := admission.enter()) is not None:
            app.state.metrics.admission_refused(refusal.reason)
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
        drainer: Drainer = app.state.drainer
        if drainer.draining:
            await websocket.close(code=1013, reason="server is draining; try again shortly")
            return
        model = websocket.query_params.get("model") or "hark"
        principal = principal_of(websocket.scope)
        session = RealtimeSession(
            websocket,
            make_conversation(app, settings),
            app.state.llm_status,
            model,
            store=OwnedStore(app.state.store, principal.owner if principal is not None else "anonymous"),
            resume_ttl_s=settings.redis.resume_ttl_s,
            metrics=app.state.metrics,
            session_id=principal.session_id if principal is not None else None,
            limits=settings.security,
        )
        metrics: Metrics = app.state.metrics
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
    app: FastAPI, settings: Settings, *, tts: TTS | None = None, sample_rate: int | None = None
) -> Callable[[Callable[[ev.Event], None]], Conversation]:
    """``tts`` and ``sample_rate`` (audio in and out): a transport's own, e.g. the phone's 8 kHz."""
    engines: Engines = app.state.engines
    rate = sample_rate or 24_000
    config = conversation_config(settings)

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
