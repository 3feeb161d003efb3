"""SSRF guard for outbound workflow requests.

:func:`resolve_safe` resolves a URL's host the way the operating system would connect to it
(``getaddrinfo``, which also turns odd IPv4 spellings such as ``0x7f000001``, ``2130706433``,
``0177.0.0.1`` and ``127.1`` into ``127.0.0.1``), normalises every address (IPv4-mapped IPv6 to
IPv4; NAT64, 6to4 and Teredo addresses are judged by the IPv4 address inside them as well), and
refuses the lot when any address is loopback, private, link-local (the 169.254.169.254 metadata
service included), unspecified, multicast, reserved, shared CGNAT (100.64.0.0/10), unique-local
(fc00::/7) or otherwise not globally routable, unless allow-listed.

The caller then connects to exactly the addresses returned (see ``hark.workflows.delivery``), so
a second DNS answer can never swap in an address that was not checked (DNS rebinding).

``allow`` (``meetings.ssrf_allow``) holds exact host names (case-insensitive, a trailing dot
ignored) and IP addresses or CIDRs. A host name in it permits every address that name resolves
to; otherwise every refused address must lie inside an allowed CIDR.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import httpx

from hark.workflows.base import WorkflowError

IP = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[list[str]]]
"""``(host, port) -> addresses as text``; the default uses ``loop.getaddrinfo``."""

_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")
_UNIQUE_LOCAL = ipaddress.IPv6Network("fc00::/7")
_DEFAULT_PORTS = {"http": 80, "https": 443}


class SSRFBlocked(WorkflowError):
    """The target is not allowed. Final: retrying cannot help."""


@dataclass(frozen=True)
class Target:
    """A URL checked by :func:`check_url`: where to connect, and what to call it on the wire."""

    url: httpx.URL
    scheme: str
    host: str
    """The host as sent (ASCII, IDNA-encoded), no brackets, no trailing dot."""
    port: int
    addresses: list[IP]


def parse_url(url: str) -> tuple[httpx.URL, str, str, int]:
    """``(url, scheme, host, port)``; SSRFBlocked for anything but an absolute http(s) URL."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError):
        raise SSRFBlocked("target URL is not valid") from None
    scheme = parsed.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise SSRFBlocked("only http and https targets are allowed")
    host = parsed.raw_host.decode("ascii").lower().rstrip(".")
    if not host:
        raise SSRFBlocked("target URL has no host")
    return parsed, scheme, host, parsed.port or _DEFAULT_PORTS[scheme]


def normalise(address: str | IP) -> IP:
    """An address as the kernel will use it: IPv4-mapped IPv6 (``::ffff:10.0.0.1``) becomes IPv4,
    an IPv6 zone (``fe80::1%eth0``) is dropped."""
    ip = ipaddress.ip_address(address.split("%", 1)[0] if isinstance(address, str) else address)
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id is not None:
            ip = ipaddress.IPv6Address(str(ip).split("%", 1)[0])
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
    return ip


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    found: list[ipaddress.IPv4Address] = []
    if ip in _NAT64 or ip in _NAT64_LOCAL:
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    if ip.sixtofour is not None:
        found.append(ip.sixtofour)
    if ip.teredo is not None:
        found.extend(ip.teredo)
    return found


def blocked_reason(address: str | IP) -> str | None:
    """Why an address must not be contacted (e.g. ``"loopback"``); None when it is public."""
    ip = normalise(address)
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT:
        return "shared (CGNAT)"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in _UNIQUE_LOCAL:
            return "unique-local"
        if ip.is_site_local:
            return "site-local"
        for inner in _embedded_ipv4(ip):
            reason = blocked_reason(inner)
            if reason is not None:
                return f"{reason} (embedded in IPv6)"
    if ip.is_private:
        return "private"
    if ip.is_reserved:
        return "reserved"
    if not ip.is_global:
        return "not globally routable"
    return None


def parse_allow(allow: Sequence[str]) -> tuple[set[str], list[Network]]:
    """Split ``ssrf_allow`` into host names and networks."""
    hosts: set[str] = set()
    networks: list[Network] = []
    for raw in allow:
        entry = raw.strip()
        if not entry:
            continue
        bare = entry[1:-1] if entry.startswith("[") and entry.endswith("]") else entry
        try:
            network = ipaddress.ip_network(bare, strict=False)
        except ValueError:
            hosts.add(entry.lower().rstrip("."))
            continue
        mapped = network.network_address
        if isinstance(mapped, ipaddress.IPv6Address) and mapped.ipv4_mapped is not None:
            # ``::ffff:10.0.0.0/104`` means the IPv4 network it maps.
            prefix = max(0, network.prefixlen - 96)
            network = ipaddress.IPv4Network(f"{mapped.ipv4_mapped}/{prefix}", strict=False)
        networks.append(network)
    return hosts, networks


async def system_resolve(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return [str(info[4][0]) for info in infos]


async def check_url(url: str, allow: Sequence[str], *, resolver: Resolver | None = None) -> Target:
    """Resolve and check ``url``; the returned addresses are the only ones to connect to.

    Raises SSRFBlocked (final) for a refused target, ``OSError`` when the name does not resolve
    (possibly transient). The caller bounds the time (``asyncio.timeout``).
    """
    parsed, scheme, host, port = parse_url(url)
    allowed_hosts, allowed_networks = parse_allow(allow)
    raw = await (resolver or system_resolve)(host, port)
    addresses: list[IP] = []
    for text in raw:
        try:
            ip = normalise(text)
        except ValueError:
            raise SSRFBlocked("target resolved to an unusable address") from None
        if ip not in addresses:
            addresses.append(ip)
    if not addresses:
        raise socket.gaierror(socket.EAI_NONAME, "no addresses")
    if host not in allowed_hosts:
        for ip in addresses:
            reason = blocked_reason(ip)
            if reason is not None and not any(ip in network for network in allowed_networks):
                raise SSRFBlocked(f"target resolves to a {reason} address (not in meetings.ssrf_allow)")
    return Target(url=parsed, scheme=scheme, host=host, port=port, addresses=addresses)


async def resolve_safe(url: str, allow: Sequence[str], *, resolver: Resolver | None = None) -> list[IP]:
    """The addresses ``url`` may be sent to (connect to these, not the name); SSRFBlocked if none."""
    return (await check_url(url, allow, resolver=resolver)).addresses
