"""The command line: `hark config`, start-up refusal on bad config, `python -m hark`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def run_hark(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HARK_")}
    clean.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "hark", *args], env=clean, capture_output=True, text=True, timeout=timeout
    )


def test_config_prints_effective_settings_with_secrets_masked(tmp_path: Path) -> None:
    config = tmp_path / "hark.yaml"
    config.write_text(
        "llm:\n  model: from-yaml\n  base_url: http://127.0.0.1:9/v1\nvad:\n  end_silence_ms: 500\n"
    )
    result = run_hark(
        "config",
        "--config",
        str(config),
        env={"HARK_LLM_API_KEY": "sk-very-secret", "HARK_LLM_MODEL": "from-env"},
    )
    assert result.returncode == 0, result.stderr
    assert "sk-very-secret" not in result.stdout + result.stderr
    shown = json.loads(result.stdout)
    assert shown["llm"]["api_key"] == "**********"
    assert shown["llm"]["model"] == "from-env"  # environment beats the file
    assert shown["vad"]["end_silence_ms"] == 500
    assert shown["server"] == {
        "host": "127.0.0.1",
        "port": 8000,
        "log_level": "info",
        "log_dir": None,
        "admin_key": None,
        "api_docs": None,
        "header_timeout_s": 10.0,
        "keep_alive_s": 5,
        "body_timeout_s": 30.0,
        "websocket_compression": False,
        "plugins": [],
    }


def test_invalid_value_stops_start_up_naming_the_key(tmp_path: Path) -> None:
    result = run_hark("serve", "--port", "0", env={"HARK_VAD_THRESHOLD": "2"})
    assert result.returncode == 2
    assert "vad.threshold" in result.stderr and "HARK_VAD_THRESHOLD" in result.stderr
    config = tmp_path / "bad.yaml"
    config.write_text("server:\n  prot: 8000\n")
    result = run_hark("serve", "--config", str(config))
    assert result.returncode == 2
    assert "server.prot" in result.stderr and "unknown setting" in result.stderr


def test_benchmark_fakes_are_a_plugin_not_a_provider_kind() -> None:
    scripted = {"HARK_STT_PROVIDERS": '[{"kind": "scripted"}]', "HARK_WORKERS_ENABLED": "false"}
    result = run_hark("serve", "--port", "0", env=scripted)
    assert result.returncode == 2
    assert "unknown provider kind 'scripted'" in result.stderr
    result = run_hark(
        "serve", "--port", "0", env={**scripted, "HARK_SERVER_PLUGINS": '["hark.no_such_plugin"]'}
    )
    assert result.returncode == 2
    assert "server.plugins: cannot import 'hark.no_such_plugin'" in result.stderr


def test_hark_config_env_names_the_file(tmp_path: Path) -> None:
    config = tmp_path / "named.yaml"
    config.write_text("conversation:\n  history_turns: 3\n")
    result = run_hark("config", env={"HARK_CONFIG": str(config)})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["conversation"]["history_turns"] == 3
    missing = run_hark("config", env={"HARK_CONFIG": str(tmp_path / "nope.yaml")})
    assert missing.returncode == 2 and "does not exist" in missing.stderr


def test_version() -> None:
    result = run_hark("--version")
    assert result.returncode == 0 and result.stdout.startswith("hark ")


def test_old_engine_keys_still_work_and_say_their_new_names() -> None:
    result = run_hark("config", env={"HARK_STT_MODEL": "/models/small", "HARK_TTS_SPEAKER": "2"})
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["stt"]["faster_whisper"]["model"] == "/models/small"
    assert shown["tts"]["piper"]["speaker"] == 2
    assert "stt.model -> stt.faster_whisper.model" in result.stderr
    assert "tts.speaker -> tts.piper.speaker" in result.stderr


def test_a_bad_provider_option_stops_start_up_naming_it() -> None:
    env = {
        "HARK_STT_PROVIDERS": '[{"kind": "faster-whisper", "options": {"beam_siz": 2}}]',
        "HARK_WORKERS_ENABLED": "false",
    }
    for command in ("config", "serve"):
        result = run_hark(command, *(["--port", "0"] if command == "serve" else []), env=env)
        assert result.returncode == 2
        assert "stt.providers[0] (faster-whisper): options.beam_siz: unknown setting" in result.stderr
