"""Loopback host candidates (``webrtc.loopback_candidates``): the choice, the one patch point in
aioice, and ICE over loopback alone."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("aiortc")

from aioice import Connection, ice

from hark.transports.webrtc import hosts

LAN = ["192.168.1.20", "fd00::20"]


@pytest.mark.parametrize(
    ("mode", "found", "expected"),
    [
        (None, LAN, LAN),
        ("never", [], []),
        ("never", LAN, LAN),
        ("auto", LAN, LAN),
        ("auto", [], ["127.0.0.1", "::1"]),
        ("only", LAN, ["127.0.0.1", "::1"]),
    ],
)
def test_choose(mode: hosts.LoopbackMode | None, found: list[str], expected: list[str]) -> None:
    assert hosts.choose(mode, found, use_ipv4=True, use_ipv6=True) == expected


def test_choose_keeps_to_the_families_asked_for() -> None:
    assert hosts.choose("only", LAN, use_ipv4=True, use_ipv6=False) == ["127.0.0.1"]
    assert hosts.choose("auto", [], use_ipv4=False, use_ipv6=True) == ["::1"]


def test_the_patch_point_changes_nothing_outside_a_negotiation() -> None:
    hosts.install()
    hosts.install()  # idempotent: wrapped once
    assert ice.get_host_addresses.__module__ == hosts.__name__
    own = hosts.aioice_addresses
    assert "127.0.0.1" not in own(True, True)
    assert ice.get_host_addresses(True, True) == own(True, True)
    with hosts.offering("only"):
        assert ice.get_host_addresses(True, True) == ["127.0.0.1", "::1"]
        with hosts.offering("never"):
            assert ice.get_host_addresses(True, False) == own(True, False)
    assert ice.get_host_addresses(True, True) == own(True, True)


async def test_ice_connects_over_loopback_alone() -> None:
    """Two aioice agents that gathered inside ``offering("only")`` reach each other (aioice on
    its own never gathers on loopback: this also checks that it still asks the patch point)."""
    with hosts.offering("only"):
        a = Connection(ice_controlling=True)
        b = Connection(ice_controlling=False)
        await asyncio.gather(a.gather_candidates(), b.gather_candidates())
    try:
        for candidate in [*a.local_candidates, *b.local_candidates]:
            assert candidate.host in ("127.0.0.1", "::1"), candidate
        for one, two in ((a, b), (b, a)):
            for candidate in two.local_candidates:
                await one.add_remote_candidate(candidate)
            await one.add_remote_candidate(None)
            one.remote_username, one.remote_password = two.local_username, two.local_password
        async with asyncio.timeout(10):
            await asyncio.gather(a.connect(), b.connect())
            await a.send(b"over loopback")
            assert await b.recv() == b"over loopback"
    finally:
        await asyncio.gather(a.close(), b.close())
