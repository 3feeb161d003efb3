"""Observability: Prometheus metrics and ``GET /metrics`` (:mod:`hark.observability.metrics`),
JSON log lines without content or secrets (:mod:`hark.observability.jsonlog`, standard library
only, so ``hark.logs`` can import it cheaply) and optional per-turn OpenTelemetry traces
(:mod:`hark.observability.tracing`). Import from the submodules; this package imports nothing."""
