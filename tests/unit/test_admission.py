"""Admission control (hark.admission): new conversations refused past the configured capacity
or while the workers are saturated; the ones admitted are counted until they leave."""

from __future__ import annotations

import pytest
from fastapi import FastAPI, WebSocket
from starlette.testclient import TestClient, WebSocketDenialResponse

from hark.admission import Admission, Refusal, refuse
from hark.config import AdmissionSettings


def test_capacity_refuses_new_conversations_until_one_leaves() -> None:
    admission = Admission(AdmissionSettings(max_conversations=2, retry_after_s=7))
    assert admission.enter() is None and admission.enter() is None
    refusal = admission.enter()
    assert refusal is not None and refusal.reason == "capacity" and refusal.retry_after_s == 7
    assert admission.active == 2 and admission.refused["capacity"] == 1
    admission.leave()
    assert admission.check() is None and admission.enter() is None


def test_live_saturation_refuses_whatever_the_number() -> None:
    pressure = {"s": 0.4}
    windows: list[float] = []

    def pool_pressure(window_s: float) -> float:
        windows.append(window_s)
        return pressure["s"]

    admission = Admission(AdmissionSettings(max_wait_s=1.5, window_s=8.0), pool_pressure)
    assert admission.enter() is None  # no fixed number: only the live signal
    pressure["s"] = 2.0
    refusal = admission.enter()
    assert refusal is not None and refusal.reason == "saturated"
    assert windows[-1] == 8.0
    pressure["s"] = 0.2  # the line drained: admitted again
    assert admission.enter() is None and admission.active == 2


def test_the_live_check_can_be_turned_off_and_needs_a_pool() -> None:
    assert Admission(AdmissionSettings(max_wait_s=0.0), lambda _: 60.0).check() is None
    assert Admission(AdmissionSettings()).check() is None  # no worker pool: nothing saturates
    admission = Admission(AdmissionSettings())
    admission.leave()  # never below zero
    assert admission.active == 0


def test_a_refused_upgrade_is_a_503_with_retry_after_and_openais_error_body() -> None:
    app = FastAPI()
    refusal = Refusal("capacity", "the server is at its capacity of 2 conversations", 4.6)

    @app.websocket("/ws")
    async def endpoint(websocket: WebSocket) -> None:
        await refuse(websocket, refusal)

    with (
        TestClient(app) as client,
        pytest.raises(WebSocketDenialResponse) as denied,
        client.websocket_connect("/ws"),
    ):
        pass
    assert denied.value.status_code == 503 and denied.value.headers["retry-after"] == "5"
    assert denied.value.json()["error"]["code"] == "server_busy"
