"""Optional mDNS announcement of ``_wyoming._tcp.local.`` so Home Assistant discovers hark.
Needs the ``zeroconf`` package (``pip install 'hark[zeroconf]'``)."""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import socket
import uuid
from typing import Any

from hark.errors import MissingDependency

log = logging.getLogger("hark.wyoming")

SERVICE = "_wyoming._tcp.local."
MDNS_GROUP = "224.0.0.251"


def _lan_address() -> str:
    """The address the host would use towards the mDNS group (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect((MDNS_GROUP, 5353))
        return str(probe.getsockname()[0])


class Announcement:
    def __init__(self, name: str | None, host: str, port: int) -> None:
        self.name = name or f"hark-{uuid.getnode():012x}"
        self.host = host
        self.port = port
        self._zeroconf: Any = None
        self._info: Any = None

    async def start(self) -> None:
        try:
            from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            raise MissingDependency("zeroconf", "pip install 'hark[zeroconf]'") from None
        try:
            unspecified = ipaddress.ip_address(self.host).is_unspecified
        except ValueError:
            unspecified = False
        address = _lan_address() if unspecified else self.host
        self._info = AsyncServiceInfo(
            SERVICE,
            f"{self.name}.{SERVICE}",
            addresses=[ipaddress.ip_address(address).packed],
            port=self.port,
        )
        self._zeroconf = AsyncZeroconf()
        await self._zeroconf.async_register_service(self._info)
        log.info("wyoming announced over zeroconf", extra={"service": SERVICE, "port": self.port})

    async def stop(self) -> None:
        if self._zeroconf is None:
            return
        with contextlib.suppress(Exception):  # best effort: the host may already be offline
            await self._zeroconf.async_unregister_service(self._info)
        await self._zeroconf.async_close()
        self._zeroconf = None
