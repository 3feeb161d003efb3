"""The composition root: what every transport shares, built once per process.

``open_services`` starts it in order (the engines, their chains and the worker pool from
``hark.assembly``; the LLM probe; the meeting service) and stops it in reverse. Each transport
is handed the one typed :class:`Services`: routers through their factory's arguments or
:func:`services_of`, the Wyoming and phone servers when they are built.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from starlette.requests import HTTPConnection

from hark.admission import Admission
from hark.assembly import ECHO_SETTING, Engines, Prebuilt, assemble, prebuild, warm_up
from hark.config import Settings
from hark.drain import Drainer
from hark.errors import EngineError
from hark.meetings.service import MeetingService
from hark.observability.metrics import Metrics
from hark.pipeline.conversation import LLMStatus
from hark.security import Security
from hark.sessionstore import SessionStore

log = logging.getLogger("hark.app")


@dataclass(frozen=True, slots=True)
class Services:
    settings: Settings
    security: Security
    store: SessionStore
    metrics: Metrics
    drainer: Drainer
    admission: Admission
    engines: Engines
    llm_status: LLMStatus
    meetings: MeetingService
    started_at: float
    """time.time() when the app was created (the OpenAI models list's ``created``)."""


def running(app_state: object) -> Services | None:
    """The services of an app whose lifespan has started (``app.state``), else None."""
    found = getattr(app_state, "services", None)
    return found if isinstance(found, Services) else None


def services_of(connection: HTTPConnection) -> Services:
    """The services, from a route's request or WebSocket."""
    found = running(connection.app.state)
    if found is None:
        raise RuntimeError("hark's services are not running (the app's lifespan has not started)")
    return found


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


@asynccontextmanager
async def open_services(
    settings: Settings,
    *,
    prebuilt: Prebuilt | None,
    security: Security,
    store: SessionStore,
    metrics: Metrics,
    drainer: Drainer,
    admission: Admission,
    started_at: float,
) -> AsyncIterator[Services]:
    """Load the engines and start what uses them; on exit, stop it all. ``security``, ``store``,
    ``metrics``, ``drainer`` and ``admission`` come built: the middleware and the CLI hold them
    before the engines load. Sessions have closed (after the drain) when the exit begins."""
    built = prebuilt if prebuilt is not None else await asyncio.to_thread(prebuild, settings)
    engines = await assemble(settings, built)
    await warm_up(engines)
    admission.pressure = engines.pool.pressure if engines.pool is not None else None
    services = Services(
        settings=settings,
        security=security,
        store=store,
        metrics=metrics,
        drainer=drainer,
        admission=admission,
        engines=engines,
        llm_status=await probe_llm(engines, settings),
        meetings=await MeetingService.create(settings, engines),
        started_at=started_at,
    )
    yield services
    # 1. Meetings already stopped are processed to the end: their jobs use the engines.
    await services.meetings.aclose()
    # 2. The session store, then the models.
    await store.aclose()
    await engines.aclose()
    metrics.close()
