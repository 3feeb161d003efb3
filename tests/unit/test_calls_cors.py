"""CORS on the WebRTC offer route: only origins on the allow-list, preflight included."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hark.security.cors import CallsCors

APP_ORIGIN = "http://127.0.0.1:3000"


async def _answer(request: Request) -> Response:
    location = {"Location": "/v1/realtime/calls/rtc_1"}
    return Response("v=0\r\n", 201, media_type="application/sdp", headers=location)


async def _other(request: Request) -> Response:
    return Response("ok")


def _client(allowed: list[str]) -> httpx.AsyncClient:
    routes = [Route("/v1/realtime/calls", _answer, methods=["POST"]), Route("/v1/models", _other)]
    app = CallsCors(Starlette(routes=routes), allowed_origins=allowed)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hark")


PREFLIGHT = {
    "Origin": APP_ORIGIN,
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization, content-type",
}


async def test_an_allowed_origin_gets_the_preflight_and_reads_the_location() -> None:
    async with _client([APP_ORIGIN]) as client:
        pre = await client.options("/v1/realtime/calls", headers=PREFLIGHT)
        assert pre.status_code == 204
        assert pre.headers["access-control-allow-origin"] == APP_ORIGIN
        assert "POST" in pre.headers["access-control-allow-methods"]
        allowed = {h.strip().lower() for h in pre.headers["access-control-allow-headers"].split(",")}
        assert {"authorization", "content-type"} <= allowed
        call = await client.post("/v1/realtime/calls", headers={"Origin": APP_ORIGIN}, content=b"v=0")
        assert call.status_code == 201
        assert call.headers["access-control-allow-origin"] == APP_ORIGIN
        assert call.headers["access-control-expose-headers"] == "Location"
        assert "Origin" in call.headers["vary"]


@pytest.mark.parametrize("allowed", [[], ["https://app.example.com"]])
async def test_other_origins_and_other_routes_get_no_cors(allowed: list[str]) -> None:
    async with _client(allowed) as client:
        pre = await client.options("/v1/realtime/calls", headers=PREFLIGHT)
        assert "access-control-allow-origin" not in pre.headers
        assert pre.status_code == 405  # the route's own answer: no CORS for this origin
        call = await client.post("/v1/realtime/calls", headers={"Origin": APP_ORIGIN}, content=b"v=0")
        assert "access-control-allow-origin" not in call.headers
    async with _client([APP_ORIGIN]) as client:
        other = await client.get("/v1/models", headers={"Origin": APP_ORIGIN})
        assert "access-control-allow-origin" not in other.headers
