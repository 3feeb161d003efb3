"""Metrics, JSON logs and traces: bounded series, real figures, no content and no secrets."""

from __future__ import annotations

import io
import json
import logging
import random
import string
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import numpy as np
import pytest
from cryptography.fernet import Fernet
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from hark.assembly import Engines
from hark.config import FallbackSettings, ProviderConfig
from hark.engines.fallback import FallbackLLM, FallbackSTT, FallbackTTS
from hark.errors import EngineError
from hark.observability.jsonlog import (
    JsonFormatter,
    SessionContextFilter,
    allowed_field,
    redact,
    session_scope,
)
from hark.observability.metrics import ERROR_CODES, STAGE_LATENCIES, Metrics, metrics_router
from hark.observability.tracing import TurnTracer
from hark.pipeline import events as ev
from hark.priority import Priority, Work
from hark.work_queue import WorkQueue
from tests.fakes import FakeLLM, FakeSTT, FakeTTS

SETTINGS = FallbackSettings(attempts=1, backoff_s=0.0, breaker_failures=1, probe_interval_s=60.0)
TRANSCRIPT = "my card number is four two four two and the password is swordfish"


def cfg(kind: str, name: str) -> ProviderConfig:
    return ProviderConfig(kind=kind, name=name, timeout=1.0)


def samples(body: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition by (name, sorted labels)."""
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def series_count(body: bytes) -> int:
    return sum(1 for line in body.decode().splitlines() if line and not line.startswith("#"))


def latency(response_id: str = "resp_1") -> ev.Latency:
    return ev.Latency(
        response_id,
        end_of_turn_ms=310.0,
        stt_ms=420.0,
        llm_ttft_ms=180.0,
        tts_ttfb_ms=90.0,
        voice_to_voice_ms=760.0,
    )


class FakePool:
    """What the collector reads from a ``WorkerPool``."""

    size = 3
    processes = 4
    in_flight = 2
    ready = True
    queue_depth = 5
    queue_limit = 16
    restarts = 1
    queue: WorkQueue[object] = WorkQueue(16)
    queue.push(object(), Work(Priority.PARTIAL))

    def pressure(self, window_s: float = 10.0) -> float:
        return 0.25

    async def aclose(self) -> None:
        return None


class UnreadablePool:
    @property
    def size(self) -> int:
        raise RuntimeError("the worker pool has not started")

    async def aclose(self) -> None:
        return None


@pytest.fixture
async def engines() -> AsyncIterator[Engines]:
    """Real fallback chains around fakes: one LLM provider failing (circuit open), one answering."""
    broken = FakeLLM(name="primary", fail_before=EngineError("down", retryable=False, engine="primary"))
    llm = FallbackLLM([(cfg("openai", "primary"), broken), (cfg("vllm", "backup"), FakeLLM())], SETTINGS)
    stt = FallbackSTT([(cfg("faster-whisper", "faster-whisper"), FakeSTT())], SETTINGS)
    tts = FallbackTTS([(cfg("piper", "piper"), FakeTTS()), (cfg("espeak", "espeak"), FakeTTS())], SETTINGS)
    assert [c async for c in llm.stream([])] == ["Hello", " there", "."]
    await stt.transcribe(np.zeros(1600, dtype=np.float32))
    async for _ in tts.synthesize("Hi."):
        pass
    loaded = Engines(vad=None, stt=stt, tts=tts, llm=llm, pool=FakePool())  # type: ignore[arg-type]
    yield loaded
    await loaded.aclose()


def test_a_turn_fills_every_stage_histogram_in_seconds() -> None:
    metrics = Metrics(lambda: None)
    metrics.turn(latency(), "completed")
    metrics.turn(ev.Latency("resp_2", None, 1500.0, None, None, None), "cancelled")
    found = samples(metrics.render()[0])
    assert found[("hark_voice_to_voice_seconds_count", ())] == 1
    assert found[("hark_voice_to_voice_seconds_sum", ())] == pytest.approx(0.76)
    assert found[("hark_voice_to_voice_seconds_bucket", (("le", "0.75"),))] == 0
    assert found[("hark_voice_to_voice_seconds_bucket", (("le", "1.0"),))] == 1
    assert found[("hark_stt_seconds_count", ())] == 2
    assert found[("hark_stt_seconds_sum", ())] == pytest.approx(1.92)
    for _, name, _ in STAGE_LATENCIES:
        assert (name + "_count", ()) in found
    assert found[("hark_end_of_turn_seconds_sum", ())] == pytest.approx(0.31)
    assert found[("hark_llm_ttft_seconds_sum", ())] == pytest.approx(0.18)
    assert found[("hark_tts_ttfb_seconds_sum", ())] == pytest.approx(0.09)
    assert found[("hark_turns_total", (("status", "completed"),))] == 1
    assert found[("hark_turns_total", (("status", "cancelled"),))] == 1
    assert found[("hark_engines_loaded", ())] == 0
    assert not any(name.endswith("_created") for name, _ in found)


def test_events_pair_latency_with_its_response_done() -> None:
    metrics = Metrics(lambda: None)
    metrics.observe(ev.ResponseStarted("resp_a", "item_a", "llm"))
    metrics.observe(latency("resp_a"))
    metrics.observe(ev.ResponseDone("resp_a", "item_a", "failed", TRANSCRIPT, 1200, "boom"))
    metrics.observe(ev.ResponseDone("resp_b", "item_b", "completed", "", 0))
    found = samples(metrics.render()[0])
    assert found[("hark_voice_to_voice_seconds_count", ())] == 1
    assert found[("hark_turns_total", (("status", "failed"),))] == 1
    assert found[("hark_turns_total", (("status", "completed"),))] == 1


def test_sessions_and_errors_are_counted_with_bounded_labels() -> None:
    metrics = Metrics(lambda: None)
    metrics.session_opened("realtime")
    metrics.session_opened("realtime")
    metrics.session_opened("carrier-pigeon")
    metrics.session_closed("realtime", "client")
    metrics.session_closed("carrier-pigeon", "sess_1234 said goodbye")
    metrics.error("invalid_json")
    metrics.error("sk-live-secret-code")
    found = samples(metrics.render()[0])
    assert found[("hark_sessions_active", (("transport", "realtime"),))] == 1
    assert found[("hark_sessions_active", (("transport", "other"),))] == 0
    assert found[("hark_sessions_opened_total", (("transport", "realtime"),))] == 2
    assert found[("hark_sessions_closed_total", (("reason", "client"), ("transport", "realtime")))] == 1
    assert found[("hark_sessions_closed_total", (("reason", "other"), ("transport", "other")))] == 1
    assert found[("hark_errors_total", (("code", "invalid_json"),))] == 1
    assert found[("hark_errors_total", (("code", "other"),))] == 1
    body = metrics.render()[0].decode()
    assert "sk-live" not in body and "sess_1234" not in body and "pigeon" not in body


async def test_series_stay_flat_over_a_thousand_sessions(engines: Engines) -> None:
    metrics = Metrics(lambda: engines)
    rng = random.Random(7)
    seen: list[str] = []

    def one_session() -> None:
        session_id = f"sess_{uuid.uuid4().hex}"
        seen.append(session_id)
        transport = rng.choice(["realtime", "tts", "meeting", session_id])
        metrics.session_opened(transport)
        for turn in range(rng.randint(1, 3)):
            response_id = f"resp_{uuid.uuid4().hex}"
            metrics.observe(latency(response_id))
            status = rng.choice(["completed", "cancelled", "failed", session_id])
            metrics.observe(ev.ResponseDone(response_id, f"item_{turn}", status, TRANSCRIPT, 900))  # type: ignore[arg-type]
        metrics.error(rng.choice([*ERROR_CODES, "".join(rng.choices(string.ascii_lowercase, k=12))]))
        metrics.error(session_id)
        metrics.session_closed(transport, rng.choice(["client", "idle", "error", TRANSCRIPT]))

    one_session()
    after_first = metrics.render()[0]
    for _ in range(999):
        one_session()
    after_all = metrics.render()[0]
    assert series_count(after_all) == series_count(after_first)
    found = samples(after_all)
    assert found[("hark_sessions_opened_total", (("transport", "other"),))] > 0
    assert sum(v for (name, _), v in found.items() if name == "hark_sessions_active") == 0
    assert found[("hark_voice_to_voice_seconds_count", ())] >= 1000
    text = after_all.decode()
    assert "swordfish" not in text and "password" not in text
    assert not any(session_id in text for session_id in seen)
    assert "resp_" not in text and "sess_" not in text


async def test_collector_reads_providers_and_the_pool(engines: Engines) -> None:
    metrics = Metrics(lambda: engines)
    found = samples(metrics.render()[0])
    assert found[("hark_engines_loaded", ())] == 1
    primary = (("provider", "primary"), ("stage", "llm"))
    backup = (("provider", "backup"), ("stage", "llm"))
    assert found[("hark_provider_attempts_total", primary)] == 1
    assert found[("hark_provider_successes_total", primary)] == 0
    assert (
        found[
            ("hark_provider_failures_total", (("provider", "primary"), ("reason", "final"), ("stage", "llm")))
        ]
        == 1
    )
    assert (
        found[
            (
                "hark_provider_failures_total",
                (("provider", "primary"), ("reason", "timeout"), ("stage", "llm")),
            )
        ]
        == 0
    )
    assert found[("hark_provider_circuit_open", primary)] == 1
    assert found[("hark_provider_attempts_total", backup)] == 1
    assert found[("hark_provider_successes_total", backup)] == 1
    assert found[("hark_provider_circuit_open", backup)] == 0
    assert found[("hark_provider_successes_total", (("provider", "faster-whisper"), ("stage", "stt")))] == 1
    assert found[("hark_provider_successes_total", (("provider", "piper"), ("stage", "tts")))] == 1
    assert found[("hark_provider_attempts_total", (("provider", "espeak"), ("stage", "tts")))] == 0
    assert found[("hark_workers", ())] == 3
    assert found[("hark_workers_configured", ())] == 4
    assert found[("hark_workers_busy", ())] == 2
    assert found[("hark_workers_ready", ())] == 1
    assert found[("hark_worker_queue_depth", ())] == 5
    assert found[("hark_worker_queue_limit", ())] == 16
    assert found[("hark_worker_restarts_total", ())] == 1
    assert found[("hark_worker_pressure_seconds", ())] == 0.25
    partial = (("priority", "partial"),)
    assert found[("hark_worker_queue_waiting", partial)] == 1
    assert found[("hark_worker_queue_waiting", (("priority", "final"),))] == 0
    assert found[("hark_worker_shed_total", (("priority", "partial"), ("reason", "evicted")))] == 0
    assert found[("hark_worker_queue_wait_seconds_count", (("priority", "final"),))] == 0


def test_admission_refusals_are_counted_by_bounded_reason() -> None:
    metrics = Metrics(lambda: None)
    metrics.admission_refused("capacity")
    metrics.admission_refused("saturated")
    metrics.admission_refused("a reason nobody listed")
    found = samples(metrics.render()[0])
    assert found[("hark_admission_refused_total", (("reason", "capacity"),))] == 1
    assert found[("hark_admission_refused_total", (("reason", "saturated"),))] == 1
    assert found[("hark_admission_refused_total", (("reason", "other"),))] == 1


async def test_collector_survives_an_unreadable_pool(engines: Engines) -> None:
    engines.pool = UnreadablePool()  # type: ignore[assignment]
    found = samples(Metrics(lambda: engines).render()[0])
    assert found[("hark_engines_loaded", ())] == 1
    assert ("hark_worker_queue_depth", ()) not in found


async def test_route_serves_the_exposition() -> None:
    app = FastAPI()
    metrics = Metrics(lambda: None)
    app.include_router(metrics_router(metrics))
    with TestClient(app) as client:
        metrics.turn(latency(), "completed")
        response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "hark_voice_to_voice_seconds_count 1.0" in response.text


# -- JSON logs ---------------------------------------------------------------------------


@pytest.fixture
def json_log() -> Iterator[tuple[logging.Logger, io.StringIO, logging.Handler]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter(debug_fields=False))
    handler.addFilter(SessionContextFilter())
    logger = logging.getLogger("hark.test_jsonlog")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, stream, handler
    logger.handlers[:] = []


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_carry_level_logger_message_fields_and_session(
    json_log: tuple[logging.Logger, io.StringIO, logging.Handler],
) -> None:
    logger, stream, _ = json_log
    logger.info("turn latency", extra={"stt_ms": 420.5, "provider": "piper", "ok": True, "nan": float("nan")})
    with session_scope("sess_abc"):
        logger.warning("provider circuit opened", extra={"reason": "timeout"})
    logger.info("session closed", extra={"session": "sess_def", "level": "x"})
    first, second, third = lines(stream)
    assert first["level"] == "info" and first["logger"] == "hark.test_jsonlog"
    assert first["message"] == "turn latency" and first["ts"].endswith("+00:00")
    assert first["stt_ms"] == 420.5 and first["provider"] == "piper" and first["ok"] is True
    assert first["nan"] == "nan" and "session" not in first
    assert second["session"] == "sess_abc" and second["reason"] == "timeout"
    assert third["session"] == "sess_def" and third["level"] == "info" and third["field_level"] == "x"


def test_sensitive_fields_are_dropped_and_debug_fields_need_the_switch(
    json_log: tuple[logging.Logger, io.StringIO, logging.Handler],
) -> None:
    logger, stream, handler = json_log
    fields = {
        "transcript": TRANSCRIPT,
        "user_text": TRANSCRIPT,
        "prompt": TRANSCRIPT,
        "audio": b"\x01\x02",
        "api_key": "plain-api-key-value",
        "webhook_url": "https://example.org/plain-hook",
        "token": "plain-token-value",
        "debug_transcript": TRANSCRIPT,
        "debug_api_key": "plain-debug-key",
        "chunks": 3,
    }
    logger.info("transcribed", extra=fields)
    handler.setFormatter(JsonFormatter(debug_fields=True))
    logger.info("transcribed", extra=fields)
    off, on = lines(stream)
    assert off == {k: off[k] for k in ("ts", "level", "logger", "message", "chunks")}
    assert on["debug_transcript"] == TRANSCRIPT
    assert set(on) == {"ts", "level", "logger", "message", "chunks", "debug_transcript"}
    assert "plain" not in stream.getvalue()


def test_field_rule() -> None:
    for name in (
        "text",
        "transcript",
        "llm_prompt",
        "audio_pcm",
        "api_key",
        "apiKey",
        "admin_key",
        "fernet_keys",
        "slack_url",
        "Authorization",
        "session_token",
        "secret_env",
    ):
        assert not allowed_field(name, debug_fields=True), name
    for name in ("session", "provider", "seconds", "error", "reason", "meeting", "stt_ms", "pid"):
        assert allowed_field(name, debug_fields=False), name
    assert not allowed_field("debug_text", debug_fields=False)
    assert allowed_field("debug_text", debug_fields=True)


def test_no_secret_survives_a_session_of_logging(
    json_log: tuple[logging.Logger, io.StringIO, logging.Handler],
) -> None:
    """RELIABILITY #7, for the log side: a session's worth of records with secrets in values
    (where a careless caller or an exception message could put them) leaves none behind."""
    logger, stream, _ = json_log
    fernet = Fernet.generate_key().decode()
    slack = "https://hooks.slack.com/services/T0AAAAAAA/B0BBBBBBB/abcdefghijklmnopqrstuvwx"
    api_key = "sk-proj-" + "A1b2C3d4" * 6
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJzZXNzXzEyMyJ9.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
    whsec = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    secrets = [fernet, slack.rsplit("/", 1)[1], api_key, jwt, whsec, "hunter2pass", "swordfish"]
    with session_scope("sess_live"):
        logger.info("session opened", extra={"transport": "realtime"})
        logger.warning("delivery failed", extra={"error": f"Client error '404' for url '{slack}'"})
        logger.warning("LLM unavailable", extra={"error": f"401: Incorrect API key provided: {api_key}"})
        logger.info("token issued", extra={"expires_s": 60, "detail": f"Bearer {jwt}"})
        logger.error("config", extra={"error": f"bad key {fernet} and {whsec}"})
        logger.info("redis", extra={"target": "redis://admin:hunter2pass@redis:6379/0"})
        logger.info("webhook", extra={"target": "https://example.org/hook?token=swordfish&x=1"})
        try:
            raise ValueError(f"cannot decrypt with {fernet}")
        except ValueError:
            logger.exception("decrypt failed")
        logger.info("turn", extra={"text": TRANSCRIPT, "nested": {"prompt": TRANSCRIPT, "n": 1}})
    out = stream.getvalue()
    for secret in secrets:
        assert secret not in out, secret
    assert TRANSCRIPT not in out
    records = lines(stream)
    assert all(r["session"] == "sess_live" for r in records)
    assert records[-1]["nested"] == {"n": 1}
    assert "ValueError" in records[-2]["exception"]
    assert "redis://***@redis:6379/0" in out


def test_redact_leaves_ordinary_text_alone() -> None:
    plain = "every llm provider failed: primary (timeout: no first token in 3.0 s)"
    assert redact(plain) == plain
    assert redact("http://vllm:8000/v1/chat/completions") == "http://vllm:8000/v1/chat/completions"


# -- traces ------------------------------------------------------------------------------


class FakeSpan:
    def __init__(self, name: str, start: int, attributes: dict[str, Any] | None) -> None:
        self.name, self.start, self.attributes = name, start, attributes or {}
        self.end_time: int | None = None

    def end(self, end_time: int | None = None) -> None:
        self.end_time = end_time


class FakeTracer:
    def __init__(self) -> None:
        self.spans: list[FakeSpan] = []

    def start_span(
        self, name: str, context: Any = None, start_time: int = 0, attributes: dict[str, Any] | None = None
    ) -> FakeSpan:
        span = FakeSpan(name, start_time, attributes)
        self.spans.append(span)
        return span


def test_traces_are_off_without_an_endpoint_or_opentelemetry() -> None:
    tracer = TurnTracer.from_endpoint(None)
    assert not tracer.enabled
    tracer.record_turn(latency(), "completed")
    try:
        import opentelemetry.sdk.trace  # noqa: F401
    except ImportError:
        assert not TurnTracer.from_endpoint("http://127.0.0.1:4318").enabled


def test_a_turn_becomes_a_span_with_one_child_per_stage() -> None:
    pytest.importorskip("opentelemetry.trace")
    fake = FakeTracer()
    metrics = Metrics(lambda: None, tracer=TurnTracer(fake))
    metrics.turn(latency(), "completed")
    by_name = {span.name: span for span in fake.spans}
    assert set(by_name) == {"hark.turn", "hark.end_of_turn", "hark.stt", "hark.llm.ttft", "hark.tts.ttfb"}
    turn = by_name["hark.turn"]
    assert turn.attributes["hark.turn.status"] == "completed"
    assert turn.attributes["hark.latency.voice_to_voice_ms"] == 760.0
    assert not any(isinstance(v, str) and "sword" in v for v in turn.attributes.values())

    def ms(span: FakeSpan) -> float:
        assert span.end_time is not None
        return (span.end_time - span.start) / 1e6

    assert ms(turn) == pytest.approx(760.0)
    assert ms(by_name["hark.stt"]) == pytest.approx(420.0)
    assert by_name["hark.llm.ttft"].start == by_name["hark.stt"].end_time
