"""Run inside a network namespace that has loopback only (``unshare -n``): a ``hark serve``
under the default ``webrtc.loopback_candidates`` takes a call from an aiortc peer that offers
loopback. Prints one JSON line (tests/integration/test_webrtc_loopback_host.py reads it)."""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from pathlib import Path

from aioice import ice

from tests import webrtc_client as rtc
from tests.servers import HarkProcess
from tests.webrtc_client import Peer


async def connects(peer: Peer, timeout_s: float = 15.0) -> bool:
    """Whether ``session.created`` arrives before the peer connection fails."""
    created = asyncio.ensure_future(peer.next("session.created", timeout_s))
    try:
        async with asyncio.timeout(timeout_s):
            while not created.done() and peer.pc.connectionState != "failed":
                await asyncio.sleep(0.1)
    except TimeoutError:
        pass
    created.cancel()
    return created.done() and not created.cancelled() and created.exception() is None


async def probe(mode: str) -> dict[str, object]:
    found = ice.get_host_addresses(True, True)
    env = {"HARK_WORKERS_ENABLED": "false", "HARK_WEBRTC_LOOPBACK_CANDIDATES": mode}
    log = Path(tempfile.mkdtemp(prefix="hark-loopback-")) / "server.log"
    with HarkProcess(env=env, log_path=log) as server:
        peer = Peer(loopback_only=True)
        try:
            response = await rtc.post_offer(server.base_url, await peer.offer())
            lines = response.text.splitlines() if response.status_code == 201 else []
            candidates = sorted({line.split()[4] for line in lines if line.startswith("a=candidate:")})
            connected = False
            if response.status_code == 201:
                await peer.answer(response.text)
                connected = await connects(peer)
        finally:
            await peer.pc.close()
    return {"aioice": found, "status": response.status_code, "candidates": candidates, "connected": connected}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(probe(sys.argv[1] if len(sys.argv) > 1 else "auto"))))
