"""The SSRF guard's decisions (RELIABILITY #21). Nothing here opens a connection: literal addresses
and ``localhost`` resolve without the network, other names go through a stand-in resolver."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from hark.workflows.ssrf import SSRFBlocked, blocked_reason, check_url, normalise, resolve_safe

# A public address, used only as a literal for the guard's decision; it is never contacted.
PUBLIC_V4 = "93.184.216.34"
PUBLIC_V6 = "2606:2800:220:1:248:1893:25c8:1946"

REFUSED = {
    "http://127.0.0.1/": "loopback",
    "http://127.0.0.53:8080/x": "loopback",
    "http://169.254.169.254/latest/meta-data/": "link-local",
    "http://[::1]/": "loopback",
    "http://[::1]:9000/hook": "loopback",
    "http://0x7f000001/": "loopback",
    "http://2130706433/": "loopback",
    "http://017700000001/": "loopback",
    "http://0177.0.0.1/": "not valid",  # httpx itself rejects a dotted quad with leading zeros
    "http://127.1/": "loopback",
    "http://[::ffff:127.0.0.1]/": "loopback",
    "http://[::ffff:10.0.0.1]/": "private",
    "http://[::ffff:169.254.169.254]/": "link-local",
    "http://10.0.0.1/": "private",
    "http://172.16.5.4/": "private",
    "http://192.168.1.1/": "private",
    "http://100.64.0.1/": "shared (CGNAT)",
    "http://100.100.100.200/": "shared (CGNAT)",
    "http://[fd00::1]/": "unique-local",
    "http://[fd00:ec2::254]/": "unique-local",
    "http://[fe80::1]/": "link-local",
    "http://0.0.0.0/": "unspecified",
    "http://0/": "unspecified",
    "http://[::]/": "unspecified",
    "http://224.0.0.1/": "multicast",
    "http://[ff02::1]/": "multicast",
    "http://240.0.0.1/": "private",
    "http://[64:ff9b::7f00:1]/": "loopback (embedded in IPv6)",
    "http://[2002:7f00:1::]/": "loopback (embedded in IPv6)",
    "http://192.0.2.10/": "private",
    "http://localhost/": "loopback",
    "https://LOCALHOST./hook": "loopback",
}


class FakeResolver:
    """Answers from a table; a name not in it does not resolve."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.calls: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append(host)
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return list(self.table[host])


@pytest.mark.parametrize(("url", "reason"), sorted(REFUSED.items()))
async def test_refused_targets(url: str, reason: str) -> None:
    with pytest.raises(SSRFBlocked) as caught:
        await resolve_safe(url, [])
    assert reason in str(caught.value)
    # The message is safe to log: it never echoes the URL.
    assert url not in str(caught.value)


async def test_a_name_resolving_to_loopback_is_refused() -> None:
    resolve = FakeResolver({"hooks.example.test": ["127.0.0.1"]})
    with pytest.raises(SSRFBlocked, match="loopback"):
        await resolve_safe("https://hooks.example.test/x", [], resolver=resolve)


async def test_one_private_address_among_public_ones_is_enough_to_refuse() -> None:
    resolve = FakeResolver({"mixed.example.test": [PUBLIC_V4, "::ffff:10.1.2.3", PUBLIC_V6]})
    with pytest.raises(SSRFBlocked, match="private"):
        await resolve_safe("https://mixed.example.test/", [], resolver=resolve)


@pytest.mark.parametrize(
    "url", [f"http://{PUBLIC_V4}/hook", f"https://{PUBLIC_V4}:8443/", f"https://[{PUBLIC_V6}]/"]
)
async def test_public_literals_are_allowed(url: str) -> None:
    addresses = await resolve_safe(url, [])
    assert len(addresses) == 1
    assert blocked_reason(addresses[0]) is None


async def test_public_name_is_allowed_and_its_addresses_returned() -> None:
    resolve = FakeResolver({"hooks.example.test": [PUBLIC_V4, PUBLIC_V4, f"::ffff:{PUBLIC_V4}"]})
    addresses = await resolve_safe("https://Hooks.Example.Test./x", [], resolver=resolve)
    assert addresses == [ipaddress.IPv4Address(PUBLIC_V4)]  # normalised and de-duplicated
    assert resolve.calls == ["hooks.example.test"]


@pytest.mark.parametrize(
    "url",
    [
        "ftp://93.184.216.34/",
        "file:///etc/passwd",
        "gopher://127.0.0.1:6379/_INFO",
        "ws://93.184.216.34/",
        "http:///nohost",
        "not a url",
        "//93.184.216.34/",
    ],
)
async def test_only_http_and_https(url: str) -> None:
    with pytest.raises(SSRFBlocked):
        await resolve_safe(url, [])


async def test_allow_list_by_host_name() -> None:
    assert await resolve_safe("http://localhost:8080/", ["localhost"]) == [ipaddress.ip_address("127.0.0.1")]
    assert await resolve_safe("http://LocalHost.:8080/", ["LOCALHOST."])
    resolve = FakeResolver({"internal.test": ["10.0.0.7", "fd00::7"]})
    assert len(await resolve_safe("https://internal.test/", ["internal.test"], resolver=resolve)) == 2
    # Allowing a name does not allow its addresses under another name.
    with pytest.raises(SSRFBlocked):
        await resolve_safe("http://127.0.0.1:8080/", ["localhost"])


async def test_allow_list_by_address_and_cidr() -> None:
    assert await resolve_safe("http://127.0.0.1:1/", ["127.0.0.1"])
    assert await resolve_safe("http://0x7f000001:1/", ["127.0.0.1"])  # the same address, spelt oddly
    assert await resolve_safe("http://localhost:1/", ["127.0.0.0/8"])
    assert await resolve_safe("http://10.20.30.40/", ["10.0.0.0/8"])
    assert await resolve_safe("http://[::ffff:10.0.0.1]/", ["10.0.0.0/8"])
    assert await resolve_safe("http://10.0.0.1/", ["::ffff:10.0.0.0/104"])
    assert await resolve_safe("http://[::1]:1/", ["[::1]"])
    assert await resolve_safe("http://[fd00::5]/", ["fd00::/8"])
    for url, allow in [
        ("http://192.168.1.1/", ["10.0.0.0/8"]),
        ("http://127.0.0.2/", ["127.0.0.1"]),
        ("http://[::1]/", ["127.0.0.1"]),
        ("http://169.254.169.254/", ["127.0.0.0/8", "localhost"]),
        ("http://10.0.0.1/", ["", "  "]),
    ]:
        with pytest.raises(SSRFBlocked):
            await resolve_safe(url, allow)


async def test_every_address_of_a_name_must_be_allowed() -> None:
    resolve = FakeResolver({"dual.test": ["127.0.0.1", "::1"]})
    with pytest.raises(SSRFBlocked, match="loopback"):
        await resolve_safe("http://dual.test/", ["127.0.0.1"], resolver=resolve)
    assert len(await resolve_safe("http://dual.test/", ["127.0.0.1", "::1"], resolver=resolve)) == 2


async def test_unresolvable_name_is_an_os_error_not_a_refusal() -> None:
    # Possibly transient, so the delivery retries it; a refusal is final.
    with pytest.raises(OSError):
        await resolve_safe("https://nowhere.test/", [], resolver=FakeResolver({}))


async def test_check_url_keeps_what_the_wire_needs() -> None:
    resolve = FakeResolver({"xn--bcher-kva.test": [PUBLIC_V4]})
    target = await check_url("https://user:pw@Bücher.test:8443/p?q=1", [], resolver=resolve)
    assert (target.scheme, target.host, target.port) == ("https", "xn--bcher-kva.test", 8443)
    assert target.addresses == [ipaddress.IPv4Address(PUBLIC_V4)]


def test_normalise() -> None:
    assert normalise("::ffff:10.0.0.1") == ipaddress.IPv4Address("10.0.0.1")
    assert normalise("fe80::1%eth0") == ipaddress.IPv6Address("fe80::1")
    assert normalise(ipaddress.IPv6Address("::ffff:7f00:1")) == ipaddress.IPv4Address("127.0.0.1")
    assert blocked_reason("8.8.8.8") is None
    assert blocked_reason("2001:4860:4860::8888") is None
