"""Tests for settings loading (hark.config.load_settings)."""

from __future__ import annotations

from pathlib import Path

import pytest

import hark.config.loading
from hark.config import DEFAULT_SYSTEM_PROMPT, Settings, load_settings
from hark.errors import ConfigError, HarkError

pytestmark = pytest.mark.usefixtures("config_isolated")


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def config_error(*args: object) -> str:
    with pytest.raises(ConfigError) as info:
        load_settings(*args)  # type: ignore[arg-type]
    return str(info.value)


# -- defaults ----------------------------------------------------------------------------------


def test_defaults() -> None:
    settings = load_settings()
    assert isinstance(settings, Settings)
    assert (settings.server.host, settings.server.port, settings.server.log_level) == (
        "127.0.0.1",
        8000,
        "info",
    )
    vad = settings.vad
    assert (vad.model_path, vad.threshold, vad.neg_threshold) == (None, 0.5, None)
    assert (vad.start_ms, vad.end_silence_ms, vad.prefix_ms, vad.max_turn_s) == (96, 300, 300, 30.0)
    stt = settings.stt
    assert (stt.workers, stt.language, stt.partial_interval_ms) == (1, "en", 600)
    fw = stt.faster_whisper
    assert (fw.model, fw.device, fw.compute_type, fw.threads, fw.beam_size) == (None, "cpu", "int8", 0, 1)
    assert (fw.encoder_window_s, fw.steady_input) == (10.0, True)
    tts = settings.tts
    assert tts.workers == 1
    piper = tts.piper
    assert (piper.voice, piper.speaker, piper.length_scale, piper.noise_scale, piper.noise_w_scale) == (
        (None,) * 5
    )
    llm = settings.llm
    assert (llm.kind, llm.base_url, llm.api_key, llm.model, llm.model_path) == (
        "openai",
        None,
        None,
        "default",
        None,
    )
    assert (llm.temperature, llm.max_tokens, llm.timeout, llm.context_size, llm.threads) == (
        0.7,
        400,
        10.0,
        2048,
        0,
    )
    assert llm.configured is False
    conv = settings.conversation
    assert (conv.system_prompt, conv.history_turns) == (DEFAULT_SYSTEM_PROMPT, 10)
    assert (conv.output_chunk_ms, conv.output_lead_ms) == (100, 600)


def test_empty_yaml_file_means_defaults(tmp_path: Path) -> None:
    assert load_settings(write(tmp_path, "")) == load_settings()
    assert load_settings(write(tmp_path, "# only a comment\n")) == load_settings()


# -- YAML --------------------------------------------------------------------------------------


def test_yaml_values_applied(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
server:
  host: 0.0.0.0
  port: 9100
  log_level: debug
vad:
  threshold: 0.6
  end_silence_ms: 500
llm:
  base_url: http://llm.local:8080/v1/
  api_key: sk-from-yaml
  model: qwen
conversation:
  system_prompt: Talk like a pirate.
  history_turns: 1
""",
    )
    settings = load_settings(path)
    assert (settings.server.host, settings.server.port, settings.server.log_level) == (
        "0.0.0.0",
        9100,
        "debug",
    )
    assert (settings.vad.threshold, settings.vad.end_silence_ms) == (0.6, 500)
    assert settings.vad.start_ms == 96  # untouched keys keep their defaults
    assert settings.llm.base_url == "http://llm.local:8080/v1"  # trailing slash stripped
    assert settings.llm.api_key is not None
    assert settings.llm.api_key.get_secret_value() == "sk-from-yaml"
    assert settings.llm.model == "qwen"
    assert settings.llm.configured is True
    assert settings.conversation.system_prompt == "Talk like a pirate."
    assert settings.conversation.history_turns == 1


def test_config_file_accepts_str_path(tmp_path: Path) -> None:
    path = write(tmp_path, "server:\n  port: 9001\n")
    assert load_settings(str(path)).server.port == 9001


def test_hark_config_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "server:\n  port: 9002\n")
    monkeypatch.setenv("HARK_CONFIG", str(path))
    assert load_settings().server.port == 9002


def test_explicit_file_beats_hark_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARK_CONFIG", str(write(tmp_path, "server:\n  port: 9003\n", "env.yaml")))
    explicit = write(tmp_path, "server:\n  port: 9004\n", "explicit.yaml")
    assert load_settings(explicit).server.port == 9004


def test_system_config_is_read_and_the_named_file_merges_over_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    system = write(tmp_path, "server:\n  port: 9005\n  host: 10.0.0.1\nvad:\n  start_ms: 64\n", "system.yaml")
    monkeypatch.setattr(hark.config.loading, "SYSTEM_CONFIG", system)
    assert load_settings().server.port == 9005
    named = write(tmp_path, "server:\n  port: 9006\n", "named.yaml")
    settings = load_settings(named)
    assert settings.server.port == 9006
    assert settings.server.host == "10.0.0.1"  # merged key by key, not section by section
    assert settings.vad.start_ms == 64


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    message = config_error(missing)
    assert message == f"config file {missing} does not exist"


def test_missing_hark_config_file_is_a_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "nope.yaml"
    monkeypatch.setenv("HARK_CONFIG", str(missing))
    assert config_error() == f"config file {missing} does not exist"


def test_directory_is_not_a_config_file(tmp_path: Path) -> None:
    assert config_error(tmp_path) == f"config file {tmp_path} does not exist"


@pytest.mark.parametrize(
    ("text", "kind"),
    [("- a\n- b\n", "list"), ("42\n", "int"), ("just a string\n", "str"), ("true\n", "bool")],
)
def test_non_mapping_yaml_is_a_config_error(tmp_path: Path, text: str, kind: str) -> None:
    path = write(tmp_path, text)
    assert config_error(path) == f"config file {path} must hold a mapping of sections, not {kind}"


@pytest.mark.parametrize(
    "text", ["vad: [unclosed\n", "server:\n  port: 1\n bad indent: 2\n", "a: b: c\n", "{"]
)
def test_broken_yaml_is_a_config_error(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    message = config_error(path)
    assert message.startswith(f"config file {path} is not valid YAML: ")


def test_config_error_is_a_hark_error() -> None:
    assert issubclass(ConfigError, HarkError)


# -- environment -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "section", "key", "expected"),
    [
        ("HARK_LLM_BASE_URL", "https://api.example.com/v1", "llm", "base_url", "https://api.example.com/v1"),
        ("HARK_LLM_BASE_URL", "http://h:1/v1///", "llm", "base_url", "http://h:1/v1"),
        ("HARK_LLM_BASE_URL", "", "llm", "base_url", None),
        ("HARK_VAD_END_SILENCE_MS", "600", "vad", "end_silence_ms", 600),
        ("HARK_VAD_THRESHOLD", "0.65", "vad", "threshold", 0.65),
        ("HARK_VAD_MAX_TURN_S", "12.5", "vad", "max_turn_s", 12.5),
        ("HARK_SERVER_PORT", "8123", "server", "port", 8123),
        ("HARK_SERVER_LOG_LEVEL", "warning", "server", "log_level", "warning"),
        ("HARK_STT_LANGUAGE", "de", "stt", "language", "de"),
        ("HARK_LLM_KIND", "llama-cpp", "llm", "kind", "llama-cpp"),
        ("HARK_LLM_MODEL_PATH", "/models/m.gguf", "llm", "model_path", Path("/models/m.gguf")),
        ("HARK_CONVERSATION_HISTORY_TURNS", "3", "conversation", "history_turns", 3),
        ("HARK_CONVERSATION_SYSTEM_PROMPT", "Be terse.", "conversation", "system_prompt", "Be terse."),
        ("HARK_WEBRTC_DTX", "false", "webrtc", "dtx", False),
        ("HARK_WEBRTC_DTX", "1", "webrtc", "dtx", True),
    ],
)
def test_environment_sets_values(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, section: str, key: str, expected: object
) -> None:
    monkeypatch.setenv(name, value)
    assert getattr(getattr(load_settings(), section), key) == expected


def test_environment_overrides_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(
        tmp_path,
        "llm:\n  base_url: http://yaml:1/v1\n  model: from-yaml\n"
        "vad:\n  end_silence_ms: 500\n  threshold: 0.6\nserver:\n  port: 9000\n",
    )
    monkeypatch.setenv("HARK_LLM_BASE_URL", "http://env:2/v1")
    monkeypatch.setenv("HARK_VAD_END_SILENCE_MS", "600")
    monkeypatch.setenv("HARK_SERVER_PORT", "9999")
    settings = load_settings(path)
    assert settings.llm.base_url == "http://env:2/v1"
    assert settings.vad.end_silence_ms == 600
    assert settings.server.port == 9999
    # Keys the environment does not name keep the file's values.
    assert settings.llm.model == "from-yaml"
    assert settings.vad.threshold == 0.6


def test_environment_fixes_an_invalid_yaml_value(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "vad:\n  start_ms: 10\n")
    monkeypatch.setenv("HARK_VAD_START_MS", "64")
    assert load_settings(path).vad.start_ms == 64


def test_unrelated_hark_variables_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARK_SOMETHING_ELSE", "1")
    monkeypatch.setenv("HARKNESS", "x")
    assert load_settings() == Settings()


# -- invalid values ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "key", "fragment"),
    [
        ("HARK_VAD_THRESHOLD", "1.5", "vad.threshold", "less than 1"),
        ("HARK_VAD_THRESHOLD", "0", "vad.threshold", "greater than 0"),
        ("HARK_VAD_THRESHOLD", "loud", "vad.threshold", "valid number"),
        ("HARK_VAD_END_SILENCE_MS", "10", "vad.end_silence_ms", "greater than or equal to 64"),
        ("HARK_VAD_START_MS", "5000", "vad.start_ms", "less than or equal to 2000"),
        ("HARK_SERVER_PORT", "0", "server.port", "greater than or equal to 1"),
        ("HARK_SERVER_PORT", "70000", "server.port", "less than or equal to 65535"),
        ("HARK_SERVER_PORT", "http", "server.port", "valid integer"),
        ("HARK_SERVER_LOG_LEVEL", "verbose", "server.log_level", "'debug', 'info', 'warning' or 'error'"),
        ("HARK_LLM_BASE_URL", "ftp://example.com", "llm.base_url", "must start with http:// or https://"),
        ("HARK_LLM_BASE_URL", "localhost:8080", "llm.base_url", "must start with http:// or https://"),
        ("HARK_LLM_KIND", "anthropic", "llm.kind", "'openai' or 'llama-cpp'"),
        ("HARK_LLM_TEMPERATURE", "3", "llm.temperature", "less than or equal to 2"),
        ("HARK_STT_FASTER_WHISPER_DEVICE", "tpu", "stt.faster_whisper.device", "'cpu', 'cuda' or 'auto'"),
        ("HARK_CONVERSATION_HISTORY_TURNS", "0", "conversation.history_turns", "greater than or equal to 1"),
    ],
)
def test_invalid_environment_value_names_key_and_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, key: str, fragment: str
) -> None:
    monkeypatch.setenv(name, value)
    message = config_error()
    assert message.startswith("invalid configuration (HARK_* environment):\n")
    assert f"  {key}: " in message
    assert fragment in message
    assert f"(YAML key '{key}' or environment {name})" in message


@pytest.mark.parametrize(
    ("yaml_text", "key", "env", "fragment"),
    [
        ("vad:\n  threshold: 1.0\n", "vad.threshold", "HARK_VAD_THRESHOLD", "less than 1"),
        ("server:\n  port: 70000\n", "server.port", "HARK_SERVER_PORT", "less than or equal to 65535"),
        ("server:\n  port: eighty\n", "server.port", "HARK_SERVER_PORT", "valid integer"),
        ("llm:\n  base_url: example.com\n", "llm.base_url", "HARK_LLM_BASE_URL", "must start with http://"),
        (
            "tts:\n  piper:\n    length_scale: 0.05\n",
            "tts.piper.length_scale",
            "HARK_TTS_PIPER_LENGTH_SCALE",
            "greater than 0.1",
        ),
        ("vad: 5\n", "vad", "HARK_VAD", "valid dictionary"),
    ],
)
def test_invalid_yaml_value_names_key_and_variable(
    tmp_path: Path, yaml_text: str, key: str, env: str, fragment: str
) -> None:
    path = write(tmp_path, yaml_text)
    message = config_error(path)
    assert message.startswith(f"invalid configuration ({path}, HARK_* environment):\n")
    assert f"  {key}: " in message
    assert fragment in message
    assert f"(YAML key '{key}' or environment {env})" in message


def test_every_invalid_key_is_listed(tmp_path: Path) -> None:
    path = write(tmp_path, "vad:\n  threshold: 2\nserver:\n  port: 0\n")
    lines = config_error(path).splitlines()
    assert len(lines) == 3
    # Listed in the order of the settings sections (server before vad).
    assert lines[1].startswith("  server.port: ")
    assert lines[2].startswith("  vad.threshold: ")


@pytest.mark.parametrize(
    ("yaml_text", "key", "env"),
    [
        ("vad:\n  thresh: 0.3\n", "vad.thresh", "HARK_VAD_THRESH"),
        ("bogus: 1\n", "bogus", "HARK_BOGUS"),
        ("llm:\n  api_keys: x\n", "llm.api_keys", "HARK_LLM_API_KEYS"),
    ],
)
def test_unknown_yaml_keys_rejected(tmp_path: Path, yaml_text: str, key: str, env: str) -> None:
    path = write(tmp_path, yaml_text)
    message = config_error(path)
    assert f"  {key}: unknown setting (YAML key '{key}' or environment {env})" in message


def test_unknown_key_in_a_known_section_via_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARK_VAD_BOGUS", "1")
    assert (
        "  vad.bogus: unknown setting (YAML key 'vad.bogus' or environment HARK_VAD_BOGUS)" in config_error()
    )


def test_invalid_yaml_section_not_hidden_by_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, "vad: 5\n")
    monkeypatch.setenv("HARK_VAD_START_MS", "64")
    assert "  vad: " in config_error(path)


# -- masking -----------------------------------------------------------------------------------


def test_masked_never_contains_the_api_key_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARK_LLM_API_KEY", "sk-very-secret-value-123")
    settings = load_settings()
    assert settings.llm.api_key is not None
    assert settings.llm.api_key.get_secret_value() == "sk-very-secret-value-123"
    masked = settings.masked()
    assert "sk-very-secret-value-123" not in repr(masked)
    assert masked["llm"]["api_key"] != "sk-very-secret-value-123"
    assert set(masked["llm"]["api_key"]) == {"*"}
    assert "sk-very-secret-value-123" not in repr(settings)
    assert "sk-very-secret-value-123" not in str(settings.llm)


def test_masked_never_contains_the_api_key_from_yaml(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, "llm:\n  api_key: sk-yaml-secret-456\n"))
    assert "sk-yaml-secret-456" not in repr(settings.masked())


def test_masked_is_plain_data() -> None:
    masked = load_settings().masked()
    assert sorted(masked) == [
        "admission",
        "audio",
        "conversation",
        "fallback",
        "llm",
        "meetings",
        "observability",
        "redis",
        "security",
        "server",
        "stt",
        "tts",
        "twilio",
        "vad",
        "webrtc",
        "workers",
        "wyoming",
    ]
    assert masked["server"] == {
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
    assert masked["llm"]["api_key"] is None
    assert masked["vad"]["model_path"] is None


def test_masked_paths_are_strings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARK_LLM_MODEL_PATH", "/models/m.gguf")
    assert load_settings().masked()["llm"]["model_path"] == "/models/m.gguf"


# -- llm.configured ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "configured"),
    [
        ({}, False),
        ({"HARK_LLM_BASE_URL": "http://x/v1"}, True),
        ({"HARK_LLM_KIND": "llama-cpp"}, False),
        ({"HARK_LLM_KIND": "llama-cpp", "HARK_LLM_MODEL_PATH": "/m.gguf"}, True),
        ({"HARK_LLM_KIND": "llama-cpp", "HARK_LLM_BASE_URL": "http://x/v1"}, False),
    ],
)
def test_llm_configured(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], configured: bool) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert load_settings().llm.configured is configured


def test_twilio_auth_token_comes_from_env_or_a_file_and_is_masked(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HARK_TWILIO_AUTH_TOKEN", "twilio-secret-789")
    settings = load_settings()
    assert settings.twilio.token() == "twilio-secret-789"
    assert "twilio-secret-789" not in repr(settings.masked())
    secret = tmp_path / "twilio_token"
    secret.write_text("from-a-file\n")
    monkeypatch.setenv("HARK_TWILIO_AUTH_TOKEN_FILE", str(secret))
    assert load_settings().twilio.token() == "from-a-file"
    monkeypatch.setenv("HARK_TWILIO_AUTH_TOKEN_FILE", str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match=r"twilio\.auth_token_file"):
        load_settings().twilio.token()
    monkeypatch.setenv("HARK_TWILIO_PUBLIC_URL", "voice.example.com")
    with pytest.raises(ConfigError, match=r"twilio\.public_url"):
        load_settings()
