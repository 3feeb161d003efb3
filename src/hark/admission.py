"""Admission control: past its capacity hark refuses *new* conversations, never drops one.

Two signals, either refuses (503 / close 1013 with Retry-After, as the session cap does; and
``/ready`` answers 503 so a load balancer sends people elsewhere):

- ``capacity``: ``admission.max_conversations`` realtime conversations are open. The number is
  configured, from ``hark bench --only talkers`` run on the box (docs/deploy.md, "Sizing a
  box"), not measured at start-up: what a conversation costs depends on how much people talk,
  the partial-transcript interval, reply lengths and the LLM, none of which start-up can see,
  and a start-up measurement on a busy or throttled host would fix a wrong number until restart.
- ``saturated``: measured live. A finished turn's transcript or a reply's speech waited longer
  than ``admission.max_wait_s`` for a worker within the last ``window_s`` (the pool's
  ``pressure``): the engines are not keeping up, whatever the configured number says. By then
  partial and speculative work is already being shed, so a refusal comes before the
  conversations already running see their answers late.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from fastapi import WebSocket
from fastapi.responses import JSONResponse

from hark.config import AdmissionSettings

log = logging.getLogger("hark.admission")

Reason = Literal["capacity", "saturated"]
REASONS: tuple[Reason, ...] = ("capacity", "saturated")
CLOSE_TRY_AGAIN = 1013


@dataclass(frozen=True, slots=True)
class Refusal:
    reason: Reason
    message: str
    retry_after_s: float


class Admission:
    """Counts the conversations it admitted. ``pressure(window_s)`` is the worker pool's (None:
    no pool, nothing to saturate)."""

    def __init__(self, settings: AdmissionSettings, pressure: Callable[[float], float] | None = None) -> None:
        self.settings = settings
        self.pressure = pressure
        self.active = 0
        self.refused: Counter[Reason] = Counter()

    def check(self) -> Refusal | None:
        """Why a new conversation would be refused now; None when it would be admitted."""
        s = self.settings
        if s.max_conversations and self.active >= s.max_conversations:
            return Refusal(
                "capacity",
                f"the server is at its capacity of {s.max_conversations} conversations; try again shortly",
                s.retry_after_s,
            )
        if s.max_wait_s and self.pressure is not None and self.pressure(s.window_s) > s.max_wait_s:
            return Refusal("saturated", "the server is saturated; try again shortly", s.retry_after_s)
        return None

    def enter(self) -> Refusal | None:
        """Admit one conversation (call :meth:`leave` when it ends), or say why not."""
        refusal = self.check()
        if refusal is None:
            self.active += 1
        else:
            self.refused[refusal.reason] += 1
            log.info("conversation refused", extra={"reason": refusal.reason, "active": self.active})
        return refusal

    def leave(self) -> None:
        self.active = max(0, self.active - 1)


async def refuse(websocket: WebSocket, refusal: Refusal) -> None:
    """Refuse an upgrade: HTTP 503 with Retry-After and OpenAI's error body where the server
    can answer a WebSocket handshake with a response (uvicorn), else close 1013 at once."""
    retry_after = str(max(1, math.ceil(refusal.retry_after_s)))  # as the session cap's
    body = {
        "error": {"message": refusal.message, "type": "server_error", "param": None, "code": "server_busy"}
    }
    if "websocket.http.response" in (websocket.scope.get("extensions") or {}):
        await websocket.send_denial_response(
            JSONResponse(body, status_code=503, headers={"Retry-After": retry_after})
        )
        return
    await websocket.close(code=CLOSE_TRY_AGAIN, reason=f"{refusal.reason}; retry after {retry_after} s")
