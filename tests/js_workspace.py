"""Helpers for tests of the web client kit (clients/js, clients/react, examples/nextjs): node, the workspace's
node_modules (`make test` installs them with `npm ci`), and the packages built from source."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "clients" / "js"
REACT = ROOT / "clients" / "react"
EXAMPLE = ROOT / "examples" / "nextjs"


def npm(*args: str, cwd: Path = ROOT, timeout: float = 300, env: dict[str, str] | None = None) -> str:
    """Run npm; a failure shows npm's own output."""
    done = subprocess.run(
        ["npm", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "NEXT_TELEMETRY_DISABLED": "1", **(env or {})},
    )
    assert done.returncode == 0, f"npm {' '.join(args)} failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done.stdout


@pytest.fixture(scope="session")
def js_workspace() -> Path:
    """node_modules installed, and the core and React packages built from the current source."""
    ok = shutil.which("node") is not None and (ROOT / "node_modules" / ".hark-installed").is_file()
    if not ok:
        if os.environ.get("CI"):
            pytest.fail("node or the npm workspace is missing (run `make test`)", pytrace=False)
        pytest.skip("node or node_modules is missing (make test installs them)")
    npm("run", "build", "--workspace", "clients/js", "--workspace", "clients/react")
    return ROOT
