"""Errors that cross module boundaries, each saying what the caller may do about it."""

from __future__ import annotations


class HarkError(Exception):
    """Base class for hark's own errors."""


class ConfigError(HarkError):
    """The configuration is invalid; the message names the key and how to fix it."""


class EngineError(HarkError):
    """An engine failed. ``retryable`` says whether trying again (or elsewhere) may help."""

    def __init__(
        self, message: str, *, retryable: bool = False, engine: str = "", retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.engine = engine
        self.retry_after = retry_after
        """Seconds the provider asked us to wait (HTTP Retry-After), when it said."""


class EngineUnavailable(EngineError):
    """The engine cannot be reached or is not configured."""

    def __init__(self, message: str, *, engine: str = "") -> None:
        super().__init__(message, retryable=True, engine=engine)


class EngineSaturated(EngineError):
    """The engine works but is at capacity: load, not a fault. A fallback chain does not open
    its circuit for it (it may spill over to the next provider, when configured), and a session
    does not count it as a failed turn."""

    def __init__(self, message: str, *, engine: str = "", retry_after: float | None = None) -> None:
        super().__init__(message, retryable=True, engine=engine, retry_after=retry_after)


class WorkShed(EngineSaturated):
    """Low-priority work (a partial or speculative transcription, see ``hark.priority``) dropped
    under load. Nobody is owed its result; the caller just goes on."""


class MissingDependency(HarkError):
    """An optional dependency is not installed; the message carries the exact install command."""

    def __init__(self, package: str, install: str) -> None:
        super().__init__(f"{package} is not installed; install it with: {install}")
        self.package = package
        self.install = install


def parse_retry_after(value: str | None, *, cap: float = 60.0) -> float | None:
    """Seconds from an HTTP Retry-After header (delta-seconds form); None when absent or unusable."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return min(cap, max(0.0, seconds))
