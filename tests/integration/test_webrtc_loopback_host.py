"""A machine whose only interface is loopback (a network namespace of its own, ``unshare -n``):
under ``webrtc.loopback_candidates: auto`` hark answers with loopback candidates and the call
connects; under ``never`` (aioice as it is) the answer has no candidate and the call fails."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("aiortc")

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def isolated(*command: str) -> subprocess.CompletedProcess[str]:
    """``command`` in a new network namespace with loopback up (and nothing else)."""
    script = 'ip link set lo up && exec "$@"'
    return subprocess.run(
        ["unshare", "-n", "sh", "-c", script, "sh", *command],
        cwd=ROOT,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )


def namespaces_available() -> bool:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    return isolated("true").returncode == 0


@pytest.mark.skipif(not namespaces_available(), reason="needs unshare -n (root or CAP_SYS_ADMIN) and ip")
@pytest.mark.parametrize(("mode", "connects"), [("auto", True), ("never", False)])
def test_a_loopback_only_machine_takes_calls_under_auto(mode: str, connects: bool) -> None:
    done = isolated(sys.executable, "-m", "tests.webrtc_loopback_probe", mode)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["aioice"] == []  # aioice alone finds nothing to gather on
    assert result["status"] == 201
    if connects:
        assert result["candidates"] and set(result["candidates"]) <= {"127.0.0.1", "::1"}, result
    else:
        assert result["candidates"] == [], result
    assert result["connected"] is connects, result
