"""Prometheus metrics for ``GET /metrics``: every name starts with ``hark_``.

Every label value comes from a small fixed set or from the configuration (provider names), never
from a request: no session ids, no text. Unknown values are counted as ``other``, so the number
of series stays flat however many sessions come and go (see ``docs/observability.md``).

One :class:`Metrics` object per app, with its own registry (never the process-global one, so two
apps in one process, e.g. in tests, do not share counters). Per-provider and worker-pool figures
are not kept here: :class:`EngineCollector` reads them from the fallback chains and the pool at
scrape time.
"""

from __future__ import annotations

import logging
import math
from collections import Counter as Tally
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable
from typing import TYPE_CHECKING

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from hark.observability.tracing import TurnTracer
from hark.pipeline import events as ev
from hark.security.access import public
from hark.work_queue import WAIT_BUCKETS

if TYPE_CHECKING:
    from hark.assembly import Engines
    from hark.workers.pool import WorkerPool

log = logging.getLogger("hark.metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The classic text format: every Prometheus 2.x and 3.x server reads it."""

LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
"""Seconds. Voice-to-voice is good under 1 s and broken past a few; 10 s catches the stalls."""

OTHER = "other"
TRANSPORTS = ("realtime", "tts", "meeting", "wyoming", "twilio", "webrtc", OTHER)
CLOSE_REASONS = ("client", "idle", "timeout", "shutdown", "error", "policy", OTHER)
"""client: the client hung up; idle / timeout: idle or ping timeout; shutdown: server drain;
error: a server fault ended it; policy: refused (auth, limits, oversized frames)."""
TURN_STATUSES = ("completed", "cancelled", "failed", OTHER)
FAILURE_REASONS = ("timeout", "unavailable", "retryable", "final", "error", OTHER)
"""As ``hark.engines.provider_health.failure_reason`` names them (``saturated`` is not a failure: it
has its own series)."""
ADMISSION_REASONS = ("capacity", "saturated", OTHER)
"""Why a new conversation was refused (``hark.admission``)."""
ERROR_CODES = (
    "already_started",
    "conversation_already_has_active_response",
    "engine_error",
    "engine_unavailable",
    "event_too_large",
    "forbidden",
    "frame_too_large",
    "idle_timeout",
    "input_audio_buffer_commit_empty",
    "invalid_api_key",
    "invalid_audio",
    "invalid_event",
    "invalid_json",
    "invalid_value",
    "item_not_found",
    "llm_not_configured",
    "llm_unavailable",
    "max_length_reached",
    "missing_required_parameter",
    "not_started",
    "origin_not_allowed",
    "pool_busy",
    "processing_failed",
    "rate_limited",
    "recording_refused",
    "response_cancel_not_active",
    "resume_not_first",
    "resume_token_invalid",
    "resume_unavailable",
    "server_error",
    "session_limit",
    "session_store_unavailable",
    "shutting_down",
    "storage_error",
    "transcription_failed",
    "tts_failed",
    "unauthorized",
    "unknown_event_type",
    "unsupported_audio_format",
    OTHER,
)
"""Error codes counted by name; any other code is counted as ``other``."""

STAGE_LATENCIES = (
    ("end_of_turn_ms", "hark_end_of_turn_seconds", "End of speech to end of turn detected."),
    ("stt_ms", "hark_stt_seconds", "End of speech to final transcript."),
    ("llm_ttft_ms", "hark_llm_ttft_seconds", "LLM request to its first token."),
    ("tts_ttfb_ms", "hark_tts_ttfb_seconds", "First sentence to its first synthesized audio."),
    ("voice_to_voice_ms", "hark_voice_to_voice_seconds", "End of speech to first reply audio sent."),
)
"""(Latency field, histogram name, help)."""

MAX_LABEL_CHARS = 64
PENDING_LATENCIES = 256


def bounded(value: str, allowed: Collection[str]) -> str:
    """``value`` when it is one of ``allowed``, else ``"other"``."""
    return value if value in allowed else OTHER


class Metrics:
    """What the app counts. ``engines`` returns the loaded engines (None before start-up ends)."""

    def __init__(self, engines: Callable[[], Engines | None], *, tracer: TurnTracer | None = None) -> None:
        self.registry = CollectorRegistry()
        self.tracer = tracer or TurnTracer(None)
        r = self.registry
        self.sessions_active = Gauge("hark_sessions_active", "Sessions open now.", ["transport"], registry=r)
        self.sessions_opened = Counter("hark_sessions_opened", "Sessions opened.", ["transport"], registry=r)
        self.sessions_closed = Counter(
            "hark_sessions_closed", "Sessions closed, by reason.", ["transport", "reason"], registry=r
        )
        self.turns = Counter("hark_turns", "Replies finished, by status.", ["status"], registry=r)
        self.errors = Counter("hark_errors", "Error events sent to clients, by code.", ["code"], registry=r)
        self.outbound_dropped = Counter(
            "hark_outbound_audio_dropped_bytes",
            "Reply audio dropped because a client read too slowly (its outbound budget was full).",
            ["transport"],
            registry=r,
        )
        self.admission_refusals = Counter(
            "hark_admission_refused",
            "New conversations refused to protect those running (capacity: the configured number;"
            " saturated: the workers are not keeping up).",
            ["reason"],
            registry=r,
        )
        self.latency = [
            (field, Histogram(name, doc + " Seconds.", buckets=LATENCY_BUCKETS, registry=r))
            for field, name, doc in STAGE_LATENCIES
        ]
        # Every known label value starts at 0, so rate() works from the first scrape and the
        # series count never moves.
        for transport in TRANSPORTS:
            self.sessions_active.labels(transport)
            self.sessions_opened.labels(transport)
            for reason in CLOSE_REASONS:
                self.sessions_closed.labels(transport, reason)
        for status in TURN_STATUSES:
            self.turns.labels(status)
        for code in ERROR_CODES:
            self.errors.labels(code)
        for reason in ADMISSION_REASONS:
            self.admission_refusals.labels(reason)
        r.register(EngineCollector(engines))
        self._pending: OrderedDict[str, ev.Latency] = OrderedDict()

    # -- what the transports call --------------------------------------------------------

    def session_opened(self, transport: str) -> None:
        transport = bounded(transport, TRANSPORTS)
        self.sessions_opened.labels(transport).inc()
        self.sessions_active.labels(transport).inc()

    def session_closed(self, transport: str, reason: str) -> None:
        transport = bounded(transport, TRANSPORTS)
        self.sessions_closed.labels(transport, bounded(reason, CLOSE_REASONS)).inc()
        self.sessions_active.labels(transport).dec()

    def turn(self, latency: ev.Latency | None, status: str) -> None:
        """One finished reply: its stage latencies (those measured) and its status."""
        if latency is not None:
            for field, histogram in self.latency:
                ms = getattr(latency, field)
                if ms is not None and math.isfinite(ms) and ms >= 0:
                    histogram.observe(ms / 1000.0)
        self.turns.labels(bounded(status, TURN_STATUSES)).inc()
        if latency is not None:
            self.tracer.record_turn(latency, bounded(status, TURN_STATUSES))

    def audio_dropped(self, transport: str, size: int) -> None:
        self.outbound_dropped.labels(bounded(transport, TRANSPORTS)).inc(size)

    def error(self, code: str) -> None:
        self.errors.labels(bounded(code, ERROR_CODES)).inc()

    def admission_refused(self, reason: str) -> None:
        self.admission_refusals.labels(bounded(reason, ADMISSION_REASONS)).inc()

    def observe(self, event: ev.Event) -> None:
        """Feed a conversation's events: a ``Latency`` is held until its ``ResponseDone``
        (which the conversation emits right after it), then both count as one :meth:`turn`.
        Other events are ignored; errors are counted where they are sent, with :meth:`error`."""
        if isinstance(event, ev.Latency):
            self._pending[event.response_id] = event
            while len(self._pending) > PENDING_LATENCIES:
                self._pending.popitem(last=False)
        elif isinstance(event, ev.ResponseDone):
            self.turn(self._pending.pop(event.response_id, None), event.status)

    # -- exposition ----------------------------------------------------------------------

    def render(self) -> tuple[bytes, str]:
        """The exposition in the Prometheus text format, and its content type."""
        return generate_latest(_WithoutCreated(self.registry)), CONTENT_TYPE

    def close(self) -> None:
        """Flush and stop the trace exporter, if any."""
        self.tracer.close()


class _WithoutCreated:
    """The registry's metrics without the ``*_created`` timestamps prometheus_client adds to
    every counter and histogram: they double the series and no dashboard uses them."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterable[Metric]:
        for metric in self._registry.collect():
            metric.samples = [s for s in metric.samples if not s.name.endswith("_created")]
            yield metric


class EngineCollector:
    """Per-provider and worker-pool figures, read from the engines at scrape time."""

    def __init__(self, engines: Callable[[], Engines | None]) -> None:
        self._engines = engines

    def describe(self) -> list[Metric]:
        return []  # unchecked: what exists depends on the configuration

    def collect(self) -> Iterable[Metric]:
        engines = self._engines()
        yield GaugeMetricFamily(
            "hark_engines_loaded", "1 once the engines are loaded and warm.", value=int(engines is not None)
        )
        if engines is None:
            return
        try:
            families = _provider_families(engines) + _pool_families(engines)
        except Exception as exc:  # a scrape must not fail because one figure could not be read
            log.warning("engine metrics unavailable", extra={"error": type(exc).__name__})
            return
        yield from families


def _provider_families(engines: Engines) -> list[Metric]:
    labels = ["stage", "provider"]
    attempts = CounterMetricFamily(
        "hark_provider_attempts", "Attempts on a provider (retries included).", labels=labels
    )
    successes = CounterMetricFamily(
        "hark_provider_successes", "Attempts that delivered a first token, byte or result.", labels=labels
    )
    failures = CounterMetricFamily(
        "hark_provider_failures", "Failed attempts, by reason.", labels=[*labels, "reason"]
    )
    circuit = GaugeMetricFamily(
        "hark_provider_circuit_open", "1 while the provider's circuit is open (it is skipped).", labels=labels
    )
    saturated = CounterMetricFamily(
        "hark_provider_saturated", "Attempts a provider refused for load (not failures).", labels=labels
    )
    spilled = CounterMetricFamily(
        "hark_provider_spillover",
        "Requests sent on to the next provider because this one was saturated (spill_over).",
        labels=labels,
    )
    for stage, chain in (("stt", engines.stt), ("llm", engines.llm), ("tts", engines.tts)):
        if chain is None:
            continue
        for status in chain.status():
            name = str(status["name"])[:MAX_LABEL_CHARS]
            attempts.add_metric([stage, name], float(status["attempts"]))
            successes.add_metric([stage, name], float(status["successes"]))
            by_reason: Tally[str] = Tally()
            for reason, count in dict(status["failures"]).items():
                by_reason[bounded(str(reason), FAILURE_REASONS)] += int(count)
            for reason in FAILURE_REASONS:
                failures.add_metric([stage, name, reason], float(by_reason[reason]))
            circuit.add_metric([stage, name], 1.0 if status["circuit"] == "open" else 0.0)
            saturated.add_metric([stage, name], float(status.get("saturated", 0)))
            spilled.add_metric([stage, name], float(status.get("spilled", 0)))
    return [attempts, successes, failures, circuit, saturated, spilled]


def _pool_families(engines: Engines) -> list[Metric]:
    pool = engines.pool
    if pool is None:
        return []
    return [
        GaugeMetricFamily("hark_workers", "Live, warmed worker processes.", value=pool.size),
        GaugeMetricFamily("hark_workers_configured", "Worker processes configured.", value=pool.processes),
        GaugeMetricFamily("hark_workers_busy", "Workers running a request now.", value=pool.in_flight),
        GaugeMetricFamily("hark_workers_ready", "1 while the pool can serve.", value=int(pool.ready)),
        GaugeMetricFamily(
            "hark_worker_queue_depth", "Requests waiting for a worker.", value=pool.queue_depth
        ),
        GaugeMetricFamily(
            "hark_worker_queue_limit", "Requests that may wait before 503.", value=pool.queue_limit
        ),
        CounterMetricFamily(
            "hark_worker_restarts", "Workers replaced after a crash or hang.", value=pool.restarts
        ),
        *_queue_families(pool),
    ]


def _queue_families(pool: WorkerPool) -> list[Metric]:
    """The pool's line by priority (``hark.priority``): what waits, how long it waited, what
    was shed, and the pressure admission control reads."""
    queue = pool.queue
    waiting = GaugeMetricFamily(
        "hark_worker_queue_waiting", "Requests waiting for a worker, by priority.", labels=["priority"]
    )
    for priority, count in queue.depth().items():
        waiting.add_metric([priority.label], float(count))
    wait = HistogramMetricFamily(
        "hark_worker_queue_wait_seconds",
        "How long requests waited for a worker, by priority (at the class they ran as).",
        labels=["priority"],
    )
    for priority, histogram in queue.waits.items():
        cumulative = [
            (str(bound), float(n)) for bound, n in zip(WAIT_BUCKETS, histogram.buckets, strict=True)
        ]
        wait.add_metric(
            [priority.label], [*cumulative, ("+Inf", float(histogram.count))], sum_value=histogram.total_s
        )
    shed = CounterMetricFamily(
        "hark_worker_shed",
        "Work dropped under load, by priority and reason (evicted: made room for more urgent work;"
        " stale: waited past its use; refused: arrived at a full line).",
        labels=["priority", "reason"],
    )
    for (priority, reason), count in queue.shed.items():
        shed.add_metric([priority.label, reason.value], float(count))
    pressure = GaugeMetricFamily(
        "hark_worker_pressure_seconds",
        "Longest wait of a conversation's final work in the last 10 s (admission control's signal).",
        value=pool.pressure(),
    )
    return [waiting, wait, shed, pressure]


def metrics_router(metrics: Metrics) -> APIRouter:
    """``GET /metrics``: the Prometheus exposition of ``metrics``."""
    router = APIRouter()

    @router.get(
        "/metrics",
        include_in_schema=False,
        dependencies=[
            Depends(public("Prometheus scrapes it without credentials; it holds no secrets or transcripts"))
        ],
    )
    async def metrics_endpoint() -> Response:
        # async on purpose: the collector reads the chains and the pool on the event loop's thread.
        body, content_type = metrics.render()
        return Response(content=body, media_type=content_type)

    return router
