"""Every route declares who may reach it (hark.security.access); the guard enforces it.

The app is built without its lifespan (no models load): the routes exist from create_app on.
"""

from __future__ import annotations

import pytest
from fastapi import Depends, FastAPI
from starlette.routing import BaseRoute, Route

from hark.app import create_app
from hark.config import Settings
from hark.security.access import (
    API_KEY_ACCESS,
    Access,
    access_for,
    access_of,
    declare,
    public,
    routes_of,
    session_token,
)

PUBLIC_ON_PURPOSE = {
    "/",  # the browser page
    "/meeting",  # the meeting page
    "/static",  # their scripts and styles
    "/health",  # liveness probes
    "/ready",  # readiness probes
    "/metrics",  # Prometheus
    "/twilio/voice",  # Twilio's webhook: signed, checked by the route
    "/docs",  # the API description, only where server.api_docs allows
    "/docs/oauth2-redirect",
    "/redoc",
    "/openapi.json",
}

TOKEN_KINDS = {
    "/v1/realtime": "realtime",
    "/v1/tts/sessions": "tts",
    "/v1/meetings/stream": "meetings",
    # The WebRTC offer: a browser sends it with a single-use client secret (REST, not a WebSocket).
    "/v1/realtime/calls": "realtime",
}


def _path(route: BaseRoute) -> str:
    return str(getattr(route, "path", route))


@pytest.fixture(scope="module")
def routes() -> list[BaseRoute]:
    # Everything on: phone routes (loopback needs no Twilio token) and the API description.
    settings = Settings(server={"api_docs": True}, twilio={"enabled": True})
    return list(routes_of(create_app(settings).routes))


def test_every_route_of_the_built_app_declares_its_access(routes: list[BaseRoute]) -> None:
    undeclared = [_path(route) for route in routes if access_of(route) is None]
    assert not undeclared, f"routes that declare no access (see hark.security.access): {undeclared}"


def test_only_the_routes_meant_to_be_public_are(routes: list[BaseRoute]) -> None:
    public_routes = {_path(r) for r in routes if (a := access_of(r)) is not None and a.public}
    assert public_routes == PUBLIC_ON_PURPOSE
    for route in routes:
        access = access_of(route)
        assert access is not None
        if access.public:
            assert access.reason, f"{_path(route)} is public without saying why"


def test_each_route_that_takes_a_session_token_names_its_kind(routes: list[BaseRoute]) -> None:
    kinds = {
        _path(r): a.token_kind for r in routes if (a := access_of(r)) is not None and a.token_kind is not None
    }
    assert kinds == TOKEN_KINDS
    phone = next(access_of(r) for r in routes if _path(r) == "/twilio/stream")
    assert phone is not None and phone.level == "in_band"


def test_admin_routes_take_the_admin_key(routes: list[BaseRoute]) -> None:
    admin = [access_of(r) for r in routes if _path(r).startswith("/admin/")]
    assert admin and all(a is not None and a.level == "admin" for a in admin)


def _scope(path: str, kind: str = "http", method: str = "GET") -> dict[str, object]:
    return {"type": kind, "path": path, "root_path": "", "method": method, "headers": []}


def test_the_guard_reads_the_access_of_the_route_a_request_matches() -> None:
    open_ = public("a test")
    routes = [
        declare(Route("/open", lambda r: None), open_),
        declare(Route("/items/{item}", lambda r: None), session_token("items")),
        Route("/forgotten", lambda r: None),
    ]
    assert access_for(routes, _scope("/open")) is open_
    assert access_for(routes, _scope("/items/7")) == session_token("items")
    # An undeclared route, and a path no route serves, need an API key: never public by accident.
    assert access_for(routes, _scope("/forgotten")) is API_KEY_ACCESS
    assert access_for(routes, _scope("/nowhere")) is API_KEY_ACCESS
    # A method the route does not serve still answers with the route's own access (405).
    assert access_for(routes, _scope("/open", method="DELETE")) is open_


def test_a_fastapi_route_declares_its_access_as_a_dependency() -> None:
    app = FastAPI()
    probe = public("probed")

    @app.get("/probe", dependencies=[Depends(probe)])
    async def endpoint() -> dict[str, str]:
        return {}

    route = next(r for r in routes_of(app.routes) if _path(r) == "/probe")
    assert access_of(route) is probe
    assert isinstance(access_of(route), Access)
