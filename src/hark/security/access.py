"""Who may reach a route, declared where the route is declared.

Every route carries an :class:`Access` among its dependencies (``dependencies=[API_KEY]``, as the
admin routes carry ``Admin``), or through :func:`declare` for a plain Starlette route or mount.
The guard (:mod:`hark.security.guard`) reads the declaration of the route a request matches
before the application sees it. A route that declares nothing is treated as needing an API key,
so a new route is never public by accident; a test lists every route of the built app and fails
on one that declares nothing. A path no route matches is treated the same way.

The dependency itself does nothing when FastAPI calls it: the guard has already enforced it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Literal, TypeVar

from fastapi import Depends, FastAPI
from starlette.routing import BaseRoute, Match
from starlette.types import Scope

Level = Literal["public", "api_key", "admin", "in_band"]

_ATTRIBUTE = "hark_access"


@dataclass(frozen=True)
class Access:
    """``public``: anyone, on purpose (``reason`` says why). ``api_key``: an API key, or on a
    WebSocket a session token minted for ``token_kind``. ``admin``: an API key or the admin key
    (the admin routes check the admin key themselves). ``in_band``: a WebSocket whose client cannot
    present a credential in the handshake; the application checks one in its first messages."""

    level: Level
    token_kind: str | None = None
    reason: str = ""

    @property
    def public(self) -> bool:
        return self.level == "public"

    async def __call__(self) -> None:  # async: FastAPI would run a sync one on a thread
        return None


API_KEY_ACCESS = Access("api_key")
API_KEY = Depends(API_KEY_ACCESS)
"""An API key (WebSockets: an API key only, no session token)."""
ADMIN_KEY = Depends(Access("admin"))


def public(reason: str) -> Access:
    return Access("public", reason=reason)


def session_token(kind: str) -> Access:
    """A WebSocket opened with an API key or a session token minted for ``kind``."""
    return Access("api_key", token_kind=kind)


def in_band(reason: str) -> Access:
    return Access("in_band", reason=reason)


R = TypeVar("R", bound=BaseRoute)


def declare(route: R, access: Access) -> R:
    """Declare ``access`` on a route that takes no FastAPI dependencies (a mount, a plain route)."""
    setattr(route, _ATTRIBUTE, access)
    return route


def access_of(route: BaseRoute) -> Access | None:
    """What the route declares; None when it declares nothing."""
    declared = getattr(route, _ATTRIBUTE, None)
    if isinstance(declared, Access):
        return declared
    for dependency in getattr(route, "dependencies", None) or ():
        call = getattr(dependency, "dependency", None)
        if isinstance(call, Access):
            return call
    return None


def routes_of(routes: Iterable[BaseRoute]) -> Iterator[BaseRoute]:
    """Every route, with included routers opened up: recent FastAPI versions include a router
    lazily, as one route that wraps it (``original_router``), where older ones copied its routes.
    (A prefix given to ``include_router`` is not applied here: hark gives none, and a route it
    would hide matches nothing, so it needs an API key.)"""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from routes_of(included.routes)
        else:
            yield route


def access_for(routes: Iterable[BaseRoute], scope: Scope) -> Access:
    """The access of the route that will serve ``scope`` (the router's rule: the first full match,
    else the first partial one); an API key where none matches or the route declares nothing."""
    partial: BaseRoute | None = None
    for route in routes_of(routes):
        match, _ = route.matches(scope)
        if match == Match.FULL:
            return access_of(route) or API_KEY_ACCESS
        if match == Match.PARTIAL and partial is None:
            partial = route
    declared = access_of(partial) if partial is not None else None
    return declared or API_KEY_ACCESS


def declare_api_docs(app: FastAPI) -> None:
    """FastAPI's own /docs, /redoc and /openapi.json routes, served only when ``server.api_docs``
    allows (see hark.app.api_docs)."""
    docs = {app.openapi_url, app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url} - {None}
    for route in routes_of(app.routes):
        if getattr(route, "path", None) in docs:
            declare(route, public("the API description, served only where server.api_docs allows"))
