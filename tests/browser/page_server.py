"""The built-in page served as hark serves it, beside a test's own scripted endpoints."""

from __future__ import annotations

from importlib import resources

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles


def page_app(*routes: BaseRoute) -> Starlette:
    """``/`` (the page) and ``/static`` from the installed package, then ``routes``."""
    web = resources.files("hark") / "web" / "static"

    async def index(request: Request) -> FileResponse:
        return FileResponse(str(web / "index.html"))

    return Starlette(
        routes=[Route("/", index), Mount("/static", StaticFiles(directory=str(web)), name="static"), *routes]
    )
