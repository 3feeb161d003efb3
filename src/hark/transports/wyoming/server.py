"""The Wyoming TCP server beside the HTTP one: who may connect, how many, start and stop.

Wyoming carries no credentials (Home Assistant's integration sends none), so hark cannot
authenticate a client; it decides by address instead. On loopback only local processes can
reach it. Bound to any other address, hark refuses to start unless ``wyoming.allowed_clients``
lists the addresses or networks that may connect (the Home Assistant host); every other peer is
disconnected before a byte is read. Loopback peers are always allowed (the same trust as HTTP
on loopback without API keys).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from typing import Any

from hark.assembly import Engines
from hark.config import Settings
from hark.errors import ConfigError
from hark.observability.metrics import Metrics
from hark.pipeline.tools import Toolbox
from hark.security.auth import is_loopback
from hark.transports.wyoming.connection import Connection, Services
from hark.transports.wyoming.handle import Conversations
from hark.transports.wyoming.info import build_info, voice
from wyoming.error import Error
from wyoming.event import async_write_event

log = logging.getLogger("hark.wyoming")

TRANSPORT = "wyoming"
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def check_startup(settings: Settings) -> None:
    """Refuse a Wyoming server reachable beyond loopback without an address allow-list."""
    wyoming = settings.wyoming
    if not wyoming.enabled:
        return
    for entry in wyoming.allowed_clients:
        if ipaddress.ip_network(entry, strict=False).prefixlen == 0:
            raise ConfigError(
                f"wyoming.allowed_clients: {entry} allows every address; list your Home Assistant "
                "host or network instead (Wyoming has no authentication)"
            )
    if not is_loopback(wyoming.host) and not wyoming.allowed_clients:
        raise ConfigError(
            f"the Wyoming server is bound to {wyoming.host}, which is not loopback, and "
            "wyoming.allowed_clients is empty; Wyoming has no authentication, so list the addresses "
            "that may connect (HARK_WYOMING_ALLOWED_CLIENTS='[\"192.168.1.20\"]') or bind to 127.0.0.1"
        )


class AddressPolicy:
    def __init__(self, allowed: list[str]) -> None:
        self._networks: list[Network] = [ipaddress.ip_network(entry, strict=False) for entry in allowed]

    def allows(self, peer: Any) -> bool:
        """``peer``: the socket's peername (host, port, ...)."""
        try:
            address = ipaddress.ip_address(str(peer[0]).split("%", 1)[0])
        except (ValueError, TypeError, IndexError):
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return address.is_loopback or any(address in network for network in self._networks)


def services(settings: Settings, engines: Engines, metrics: Metrics | None) -> Services:
    chain = settings.llm.chain()
    llm_model = (chain[0].model or chain[0].label) if engines.llm is not None and chain else None
    tools = Toolbox.from_names(settings.conversation.tools) if settings.conversation.tools else None
    return Services(
        settings=settings.wyoming,
        stt=engines.stt,
        tts=engines.tts,
        llm=engines.llm,
        tools=tools,
        conversations=Conversations(settings.conversation.system_prompt, settings.conversation.history_turns),
        info=build_info(settings, llm_model=llm_model).event(),
        voices=frozenset({voice(settings)[0]}),
        language=settings.stt.language,
        partial_interval_s=settings.stt.partial_interval_ms / 1000.0,
        metrics=metrics,
    )


class WyomingServer:
    def __init__(self, settings: Settings, shared: Services) -> None:
        check_startup(settings)
        self._settings = settings.wyoming
        self._services = shared
        self._policy = AddressPolicy(settings.wyoming.allowed_clients)
        self._server: asyncio.Server | None = None
        self._connections: dict[asyncio.Task[Any], Connection] = {}
        self._announcement: Any = None

    @property
    def port(self) -> int:
        """The bound port (the configured one, or the one the OS chose for port 0)."""
        assert self._server is not None and self._server.sockets
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        # The HTTP server's socket set-up: a fixed send buffer, so a client that stops reading
        # holds little audio in the kernel and its writes time out (see hark.cli).
        from hark.cli import listening_socket

        sock = listening_socket(self._settings.host, self._settings.port)
        sock.set_inheritable(False)
        self._server = await asyncio.start_server(
            self._serve, sock=sock, limit=self._settings.max_event_bytes
        )
        log.info("wyoming listening", extra={"host": self._settings.host, "port": self.port})
        if self._settings.zeroconf:
            from hark.transports.wyoming.zeroconf import Announcement

            self._announcement = Announcement(self._settings.zeroconf_name, self._settings.host, self.port)
            await self._announcement.start()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        metrics = self._services.metrics
        if not self._policy.allows(writer.get_extra_info("peername")):
            log.info("wyoming client refused", extra={"reason": "address not allowed"})
            if metrics is not None:
                metrics.error("forbidden")
            writer.close()
            return
        if len(self._connections) >= self._settings.max_connections:
            if metrics is not None:
                metrics.error("session_limit")
            error = Error(text="too many Wyoming connections; try again shortly", code="session_limit")
            with contextlib.suppress(TimeoutError, ConnectionError, OSError):
                await asyncio.wait_for(async_write_event(error.event(), writer), 1.0)
            writer.close()
            return
        connection = Connection(reader, writer, self._services)
        task = asyncio.current_task()
        assert task is not None
        self._connections[task] = connection
        if metrics is not None:
            metrics.session_opened(TRANSPORT)
        try:
            await connection.run()
        finally:
            self._connections.pop(task, None)
            if metrics is not None:
                metrics.session_closed(TRANSPORT, connection.close_reason)

    async def stop(self, timeout_s: float = 10.0) -> None:
        # 1. Stop accepting new connections and withdraw the zeroconf announcement.
        if self._server is not None:
            self._server.close()
        if self._announcement is not None:
            await self._announcement.stop()
        # 2. Each connection finishes the event in progress, then closes.
        tasks = list(self._connections)
        for connection in self._connections.values():
            connection.drain()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=timeout_s)
            # 3. Past the deadline, the rest are cut.
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        log.info("wyoming stopped", extra={"connections": len(tasks)})
