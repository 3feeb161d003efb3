"""Which addresses a call offers its host ICE candidates on (``webrtc.loopback_candidates``).

aioice (0.13) gathers host candidates on every interface address except loopback, as RFC 8445
(section 5.1.1.1) asks. On a machine whose only interface is loopback (a container run with
``--network none``, a sandboxed CI runner) a call then has no candidate at all: the answer is
made, and ICE never connects. aioice offers no setting for it: ``Connection.gather_candidates``
looks its addresses up, at every gathering, through the module function
``aioice.ice.get_host_addresses``. That function is the patch point, and this module is the only
place hark touches it: ``install()`` wraps it once, and the wrapper changes nothing unless the
gathering runs inside ``offering(mode)`` (a context variable, so it holds for one call's
negotiation only: other peer connections in the process, a test's client among them, gather
as aioice does). Past aioice 0.13, ``tests/unit/test_webrtc_hosts.py`` checks that the function
is still there and still used.

- ``auto``: loopback (127.0.0.1 and ::1) only when aioice found no other address;
- ``only``: loopback only (the media never leaves the machine, and no LAN address is shown in
  the answer);
- ``never``: as aioice does.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator
from typing import Literal

from aioice import ice

LoopbackMode = Literal["auto", "only", "never"]
LOOPBACK_V4 = "127.0.0.1"
LOOPBACK_V6 = "::1"

_mode: contextvars.ContextVar[LoopbackMode | None] = contextvars.ContextVar("hark_loopback", default=None)
_original: Callable[[bool, bool], list[str]] | None = None


def choose(mode: LoopbackMode | None, found: list[str], *, use_ipv4: bool, use_ipv6: bool) -> list[str]:
    """The addresses to gather on, given aioice's own (``found``, loopback left out)."""
    if mode is None or mode == "never":
        return found
    loopback = ([LOOPBACK_V4] if use_ipv4 else []) + ([LOOPBACK_V6] if use_ipv6 else [])
    if mode == "only":
        return loopback
    return found or loopback


def aioice_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    """What aioice itself would gather on (loopback left out)."""
    return (_original or ice.get_host_addresses)(use_ipv4, use_ipv6)


def _host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    assert _original is not None
    found = _original(use_ipv4, use_ipv6)
    return choose(_mode.get(), found, use_ipv4=use_ipv4, use_ipv6=use_ipv6)


def install() -> None:
    """Wrap aioice's address lookup (once per process; idempotent)."""
    global _original
    if _original is not None:
        return
    _original = ice.get_host_addresses
    # The documented patch point above: aioice reads the module attribute at each gathering.
    setattr(ice, "get_host_addresses", _host_addresses)  # noqa: B010


@contextlib.contextmanager
def offering(mode: LoopbackMode) -> Iterator[None]:
    """Gatherings started inside (aiortc's ``setLocalDescription``) follow ``mode``."""
    install()
    token = _mode.set(mode)
    try:
        yield
    finally:
        _mode.reset(token)
