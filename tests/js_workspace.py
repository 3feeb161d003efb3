"""Helpers for tests of the web client kit (clients/js, clients/react, examples/nextjs): node, the workspace's
node_modules (`make test` installs them with `npm ci`), and the packages built from source."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "clients" / "js"
REACT = ROOT / "clients" / "react"
EXAMPLE = ROOT / "examples" / "nextjs"
SKIP_DIRS = {"node_modules", "dist", ".next", ".test-build"}
KIT_STAMP = ROOT / "node_modules" / ".hark-kit-built"
EXAMPLE_STAMP = EXAMPLE / ".next" / ".hark-built"


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


def source_digest(*folders: Path) -> str:
    """A digest of every source file under the folders (build outputs left out) and the lockfile."""
    digest = hashlib.sha256()
    files: list[Path] = [ROOT / "package-lock.json"]
    for folder in folders:
        files += sorted(p for p in folder.rglob("*") if p.is_file() and not SKIP_DIRS & set(p.parts))
    for path in files:
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def built_once(stamp: Path, digest: str, outputs: list[Path], build: Callable[[], object]) -> None:
    """Run ``build`` unless ``stamp`` holds ``digest`` and every output exists: a rerun with the
    same sources skips the build (tsc ~15 s, next build ~70 s on 2 cores)."""
    if stamp.is_file() and stamp.read_text() == digest and all(p.exists() for p in outputs):
        return
    stamp.unlink(missing_ok=True)
    build()
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(digest)


@pytest.fixture(scope="session")
def js_workspace() -> Path:
    """node_modules installed, and the core and React packages built from the current source."""
    ok = shutil.which("node") is not None and (ROOT / "node_modules" / ".hark-installed").is_file()
    if not ok:
        if os.environ.get("CI"):
            pytest.fail("node or the npm workspace is missing (run `make test`)", pytrace=False)
        pytest.skip("node or node_modules is missing (make test installs them)")
    built_once(
        KIT_STAMP,
        source_digest(CORE, REACT),
        [CORE / "dist" / "index.js", REACT / "dist" / "index.js"],
        lambda: npm("run", "build", "--workspace", "clients/js", "--workspace", "clients/react"),
    )
    return ROOT


@pytest.fixture(scope="session")
def example_build(js_workspace: Path) -> Path:
    """`next build` of examples/nextjs, skipped when neither it nor the packages changed."""
    built_once(
        EXAMPLE_STAMP,
        source_digest(CORE, REACT, EXAMPLE),
        [EXAMPLE / ".next" / "BUILD_ID"],
        lambda: npm("run", "build", cwd=EXAMPLE, timeout=600),
    )
    return EXAMPLE
