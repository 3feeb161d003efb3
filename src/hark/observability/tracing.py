"""Optional OpenTelemetry traces: one span per turn, with a child span per stage.

Off unless ``observability.otel_endpoint`` is set *and* ``opentelemetry-sdk`` with
``opentelemetry-exporter-otlp-proto-http`` is installed; hark does not depend on them. The
modules are imported by name, so nothing here needs them to type-check or to run without them.

A turn's figures arrive once it is over (the ``Latency`` event), so its spans are written
afterwards with back-dated times: the turn starts at the end of the user's speech; STT and
end-of-turn detection start there too; the LLM's time to first token follows the transcript and
TTS's time to first byte follows that. Spans carry durations and the status only, never text.
"""

from __future__ import annotations

import importlib
import logging
import time
from typing import Any

from hark.pipeline import events as ev

log = logging.getLogger("hark.tracing")

INSTALL = "pip install opentelemetry-sdk opentelemetry-exporter-otlp-proto-http"


def _ns(ms: float | None) -> int:
    return 0 if ms is None or ms != ms or ms < 0 else int(ms * 1_000_000)


class TurnTracer:
    """Writes per-turn spans with ``tracer`` (an OpenTelemetry ``Tracer``); a no-op without one."""

    def __init__(self, tracer: Any | None, provider: Any | None = None) -> None:
        self._tracer = tracer
        self._provider = provider

    @property
    def enabled(self) -> bool:
        return self._tracer is not None

    @classmethod
    def from_endpoint(cls, endpoint: str | None) -> TurnTracer:
        """An OTLP/HTTP exporter to ``endpoint`` (``http://collector:4318``); disabled when the
        endpoint is unset or OpenTelemetry is not installed (logged once)."""
        if not endpoint:
            return cls(None)
        try:
            sdk_trace = importlib.import_module("opentelemetry.sdk.trace")
            export = importlib.import_module("opentelemetry.sdk.trace.export")
            resources = importlib.import_module("opentelemetry.sdk.resources")
            otlp = importlib.import_module("opentelemetry.exporter.otlp.proto.http.trace_exporter")
        except ImportError:
            log.warning("OpenTelemetry is not installed; per-turn traces are off", extra={"install": INSTALL})
            return cls(None)
        url = endpoint.rstrip("/")
        if not url.endswith("/v1/traces"):
            url += "/v1/traces"
        provider = sdk_trace.TracerProvider(resource=resources.Resource.create({"service.name": "hark"}))
        provider.add_span_processor(export.BatchSpanProcessor(otlp.OTLPSpanExporter(endpoint=url)))
        log.info("per-turn traces on")
        return cls(provider.get_tracer("hark"), provider)

    def record_turn(self, latency: ev.Latency, status: str) -> None:
        if self._tracer is None:
            return
        try:
            trace = importlib.import_module("opentelemetry.trace")
            self._write(trace, latency, status)
        except Exception as exc:  # tracing must never break a conversation
            log.warning("turn trace failed", extra={"error": type(exc).__name__})

    def _write(self, trace: Any, latency: ev.Latency, status: str) -> None:
        assert self._tracer is not None
        stt, ttft, ttfb = _ns(latency.stt_ms), _ns(latency.llm_ttft_ms), _ns(latency.tts_ttfb_ms)
        total = _ns(latency.voice_to_voice_ms) or stt + ttft + ttfb
        end = time.time_ns()
        start = end - total
        attributes: dict[str, Any] = {"hark.turn.status": status}
        for name in ("end_of_turn_ms", "stt_ms", "llm_ttft_ms", "tts_ttfb_ms", "voice_to_voice_ms"):
            value = getattr(latency, name)
            if value is not None:
                attributes[f"hark.latency.{name}"] = float(value)
        turn = self._tracer.start_span("hark.turn", start_time=start, attributes=attributes)
        context = trace.set_span_in_context(turn)
        stages = (
            ("hark.end_of_turn", start, _ns(latency.end_of_turn_ms)),
            ("hark.stt", start, stt),
            ("hark.llm.ttft", start + stt, ttft),
            ("hark.tts.ttfb", start + stt + ttft, ttfb),
        )
        for name, begin, duration in stages:
            if duration:
                span = self._tracer.start_span(name, context=context, start_time=begin)
                span.end(end_time=begin + duration)
        turn.end(end_time=max(end, start + stt + ttft + ttfb))

    def close(self) -> None:
        if self._provider is not None:
            self._provider.shutdown()
            self._provider = None
            self._tracer = None
