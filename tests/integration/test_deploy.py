"""Deployment files and the log directory."""

from __future__ import annotations

import configparser
import os
from pathlib import Path

import httpx
import pytest

from hark.config import load_settings
from tests.servers import HarkProcess

ROOT = Path(__file__).resolve().parents[2]


def test_shipped_config_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in os.environ if k.startswith("HARK_")]:
        monkeypatch.delenv(key)
    settings = load_settings(ROOT / "deploy" / "config.yaml")
    assert settings.server.log_dir == Path("/var/log/hark")
    assert [p.kind for p in settings.tts.providers] == ["piper", "espeak"]
    assert settings.llm.chain()[0].kind == "ollama"


def test_systemd_unit_runs_hark_with_the_config() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(ROOT / "deploy" / "hark.service")
    service = unit["Service"]
    assert service["ExecStart"].endswith("hark serve")
    assert service["Environment"] == "HARK_CONFIG=/etc/hark/config.yaml"
    assert service["KillSignal"] == "SIGTERM" and int(service["TimeoutStopSec"]) >= 30
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_dockerfile_serves_hark() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert 'CMD ["hark", "serve"]' in text and "/ready" in text and "silero-vad" in text


@pytest.mark.slow
def test_logs_go_to_log_dir_or_fall_back_to_stderr(tmp_path: Path) -> None:
    log_dir = tmp_path / "logs"
    with HarkProcess(env={"HARK_SERVER_LOG_DIR": str(log_dir)}, log_path=tmp_path / "stderr.txt") as server:
        assert httpx.get(server.base_url + "/health").status_code == 200
    assert "engines warm" in (log_dir / "hark.log").read_text()
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("")
    with HarkProcess(
        env={"HARK_SERVER_LOG_DIR": str(blocked / "sub")}, log_path=tmp_path / "stderr2.txt"
    ) as server:
        assert httpx.get(server.base_url + "/health").status_code == 200
    stderr = (tmp_path / "stderr2.txt").read_text()
    assert "log_dir is not writable; logging to stderr" in stderr and "engines warm" in stderr
