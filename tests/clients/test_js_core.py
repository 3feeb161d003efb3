"""The TypeScript core and hooks: strict type checks, the core's unit tests (node --test), and
the compiled copy hark serves to its built-in page kept in step with the source."""

from __future__ import annotations

from pathlib import Path

from tests.js_workspace import CORE, REACT, npm


def test_core_and_hooks_type_check_strict(js_workspace: Path) -> None:
    """The fixture built both packages with `tsc` under `strict` and `noEmitOnError`."""
    for package in (CORE, REACT):
        assert (package / "dist" / "index.js").is_file()
        assert (package / "dist" / "index.d.ts").is_file()


def test_core_unit_tests_pass(js_workspace: Path) -> None:
    out = npm("test", cwd=CORE)
    assert "# fail 0" in out, out[-2000:]


def test_hooks_render_on_the_server(js_workspace: Path) -> None:
    out = npm("test", cwd=REACT)
    assert "# fail 0" in out, out[-2000:]


def test_built_in_page_serves_the_current_core(js_workspace: Path) -> None:
    """src/hark/web/static/vendor/hark-client is committed (no build step for users); it must be
    exactly what `npm run vendor` makes from clients/js today."""
    npm("run", "vendor:check", cwd=CORE)
