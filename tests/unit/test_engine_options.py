"""The local engines' own options (stt.faster_whisper, tts.piper): the new keys, the old flat ones
they replace, and a provider's typed ``options`` checked against its kind's model."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict

from hark.config import (
    FasterWhisperOptions,
    PiperOptions,
    ProviderConfig,
    Settings,
    STTSettings,
    TTSSettings,
    load_settings,
)
from hark.engines import registry
from hark.errors import ConfigError

pytestmark = pytest.mark.usefixtures("config_isolated")


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def logged() -> Iterator[list[str]]:
    """What ``hark.config`` logs (its own handler: hark's logging may stop propagation)."""
    handler = _Records()
    logger = logging.getLogger("hark.config")
    logger.addHandler(handler)
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


# -- new keys -----------------------------------------------------------------------------------


def test_new_yaml_keys(tmp_path: Path, logged: list[str]) -> None:
    settings = load_settings(
        write(
            tmp_path,
            "stt:\n  faster_whisper: {model: /m/small, beam_size: 3, steady_input: false}\n"
            "tts:\n  piper: {voice: /v/alan.onnx, noise_w_scale: 0}\n",
        )
    )
    fw = settings.stt.faster_whisper
    assert (fw.model, fw.beam_size, fw.steady_input, fw.device) == ("/m/small", 3, False, "cpu")
    assert (settings.tts.piper.voice, settings.tts.piper.noise_w_scale) == (Path("/v/alan.onnx"), 0.0)
    assert logged == []


def test_new_environment_names(monkeypatch: pytest.MonkeyPatch, logged: list[str]) -> None:
    monkeypatch.setenv("HARK_STT_FASTER_WHISPER_MODEL", "/m/small")
    monkeypatch.setenv("HARK_STT_FASTER_WHISPER_ENCODER_WINDOW_S", "0")
    monkeypatch.setenv("HARK_STT_FASTER_WHISPER_STEADY_INPUT", "false")
    monkeypatch.setenv("HARK_TTS_PIPER_SPEAKER", "3")
    settings = load_settings()
    fw = settings.stt.faster_whisper
    assert (fw.model, fw.encoder_window_s, fw.steady_input) == ("/m/small", 0.0, False)
    assert settings.tts.piper.speaker == 3
    assert logged == []


def test_options_as_json_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARK_STT_FASTER_WHISPER", '{"beam_size": 4, "threads": 2}')
    fw = load_settings().stt.faster_whisper
    assert (fw.beam_size, fw.threads) == (4, 2)


def test_masked_shows_the_options_under_their_engine() -> None:
    masked = load_settings().masked()
    assert "model" not in masked["stt"] and "voice" not in masked["tts"]
    assert masked["stt"]["faster_whisper"]["compute_type"] == "int8"
    assert masked["tts"]["piper"] == {
        "voice": None,
        "speaker": None,
        "length_scale": None,
        "noise_scale": None,
        "noise_w_scale": None,
    }


def test_a_dump_reads_back_without_a_warning(logged: list[str]) -> None:
    """What the worker processes get: the settings as JSON data, validated again."""
    settings = Settings(stt=STTSettings(faster_whisper=FasterWhisperOptions(model="/m", threads=2)))
    assert Settings.model_validate(settings.model_dump(mode="json")) == settings
    assert logged == []


# -- old keys -----------------------------------------------------------------------------------


def test_old_yaml_keys_still_work_with_one_warning(tmp_path: Path, logged: list[str]) -> None:
    settings = load_settings(
        write(
            tmp_path,
            "stt:\n  model: /m/small\n  threads: 2\n  language: de\n"
            "tts:\n  voice: /v/alan.onnx\n  length_scale: 1.2\n",
        )
    )
    fw = settings.stt.faster_whisper
    assert (fw.model, fw.threads, settings.stt.language) == ("/m/small", 2, "de")
    assert (settings.tts.piper.voice, settings.tts.piper.length_scale) == (Path("/v/alan.onnx"), 1.2)
    stt_warnings = [m for m in logged if "stt." in m]
    assert len(stt_warnings) == 1
    assert "stt.model -> stt.faster_whisper.model" in stt_warnings[0]
    assert "stt.threads -> stt.faster_whisper.threads" in stt_warnings[0]
    assert any("tts.voice -> tts.piper.voice" in m and "tts.length_scale" in m for m in logged)
    assert all("language" not in m for m in logged)


def test_old_environment_names_still_work(monkeypatch: pytest.MonkeyPatch, logged: list[str]) -> None:
    monkeypatch.setenv("HARK_STT_MODEL", "/m/small")
    monkeypatch.setenv("HARK_STT_DEVICE", "cuda")
    monkeypatch.setenv("HARK_STT_ENCODER_WINDOW_S", "0")
    monkeypatch.setenv("HARK_TTS_VOICE", "/v/alan.onnx")
    monkeypatch.setenv("HARK_TTS_NOISE_W_SCALE", "0")
    settings = load_settings()
    fw = settings.stt.faster_whisper
    assert (fw.model, fw.device, fw.encoder_window_s) == ("/m/small", "cuda", 0.0)
    assert (settings.tts.piper.voice, settings.tts.piper.noise_w_scale) == (Path("/v/alan.onnx"), 0.0)
    assert any("stt.encoder_window_s -> stt.faster_whisper.encoder_window_s" in m for m in logged)


def test_old_keys_in_code() -> None:
    assert STTSettings(beam_size=2).faster_whisper.beam_size == 2  # type: ignore[call-arg]
    assert TTSSettings(speaker=1).piper.speaker == 1  # type: ignore[call-arg]


def test_an_old_environment_name_beats_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "stt:\n  faster_whisper: {model: /from/file, beam_size: 2}\n")
    monkeypatch.setenv("HARK_STT_MODEL", "/from/env")
    fw = load_settings(path).stt.faster_whisper
    assert (fw.model, fw.beam_size) == ("/from/env", 2)


def test_a_new_environment_name_beats_an_old_key_in_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, "tts:\n  voice: /from/file.onnx\n  speaker: 2\n")
    monkeypatch.setenv("HARK_TTS_PIPER_VOICE", "/from/env.onnx")
    piper = load_settings(path).tts.piper
    assert (piper.voice, piper.speaker) == (Path("/from/env.onnx"), 2)


def test_a_bad_old_value_names_the_new_key_and_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARK_STT_DEVICE", "tpu")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert (
        "  stt.faster_whisper.device: Input should be 'cpu', 'cuda' or 'auto' "
        "(YAML key 'stt.faster_whisper.device' or environment HARK_STT_FASTER_WHISPER_DEVICE)"
    ) in str(info.value)


def test_an_unknown_option_is_an_unknown_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, "stt:\n  faster_whisper: {beam: 2}\n"))
    assert "  stt.faster_whisper.beam: unknown setting" in str(info.value)
    assert "HARK_STT_FASTER_WHISPER_BEAM" in str(info.value)


# -- one provider's options ---------------------------------------------------------------------


def test_a_provider_runs_with_the_stage_options_and_its_own() -> None:
    stt = STTSettings(faster_whisper=FasterWhisperOptions(beam_size=2, threads=4))
    plain = ProviderConfig(kind="faster-whisper")
    second = ProviderConfig(kind="faster-whisper", options={"model": "base", "beam_size": 5})
    assert stt.faster_whisper_for(plain) == stt.faster_whisper
    mine = stt.faster_whisper_for(second)
    assert (mine.model, mine.beam_size, mine.threads) == ("base", 5, 4)
    shorthand = ProviderConfig(kind="faster-whisper", model="/m/x", options={"model": "base"})
    assert stt.faster_whisper_for(shorthand).model == "/m/x"  # the provider's own field wins


def test_a_piper_provider_voice() -> None:
    tts = TTSSettings(piper=PiperOptions(voice=Path("/v/a.onnx"), noise_w_scale=0.0))
    assert tts.piper_for(ProviderConfig(kind="piper")).voice == Path("/v/a.onnx")
    other = tts.piper_for(ProviderConfig(kind="piper", voice="/v/b.onnx", options={"speaker": 2}))
    assert (other.voice, other.speaker, other.noise_w_scale) == (Path("/v/b.onnx"), 2, 0.0)
    path = tts.piper_for(ProviderConfig(kind="piper", model_path=Path("/v/c.onnx"), voice="/v/b.onnx"))
    assert path.voice == Path("/v/c.onnx")


def test_a_bad_provider_option_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"options\.beam_siz: unknown setting \(known: model, device"):
        STTSettings().faster_whisper_for(ProviderConfig(kind="faster-whisper", options={"beam_siz": 2}))


def test_the_registry_checks_typed_options_naming_provider_and_key() -> None:
    good = ProviderConfig(kind="faster-whisper", options={"model": "base"})
    bad = ProviderConfig(kind="faster-whisper", name="base", options={"beam_siz": 2})
    with pytest.raises(ConfigError) as info:
        registry.check_options({"stt": [good, bad]})
    assert str(info.value).startswith("stt.providers[1] (base): options.beam_siz: unknown setting (known: ")
    wrong = ProviderConfig(kind="piper", options={"length_scale": 9})
    with pytest.raises(ConfigError, match=r"tts\.providers\[0\] \(piper\): options\.length_scale: .*4"):
        registry.check_options({"tts": [wrong]})


def test_cloud_kinds_keep_free_form_extras() -> None:
    registry.check_options(
        {
            "stt": [ProviderConfig(kind="deepgram", options={"endpointing": 300, "anything": True})],
            "tts": [ProviderConfig(kind="elevenlabs", voice="v", options={"output_format": "pcm_16000"})],
            "llm": [ProviderConfig(kind="azure", options={"api_version": "2025-04-01-preview"})],
        }
    )


class _PluginOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    delay_ms: int = 0


def test_a_plugin_kind_can_declare_its_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(registry.STT_ENGINES, "slow", "tests.nowhere:Slow")
    monkeypatch.setitem(registry.OPTIONS, "stt", dict(registry.OPTIONS["stt"]))
    registry.register("stt", "slow", "tests.nowhere:Slow", options=_PluginOptions)
    registry.check_options({"stt": [ProviderConfig(kind="slow", options={"delay_ms": 5})]})
    with pytest.raises(ConfigError, match=r"options\.delay: unknown setting"):
        registry.check_options({"stt": [ProviderConfig(kind="slow", options={"delay": 5})]})


def test_a_provider_engine_is_built_with_its_own_options() -> None:
    settings = Settings(stt=STTSettings(faster_whisper=FasterWhisperOptions(beam_size=2)))
    provider = ProviderConfig(
        kind="faster-whisper", language="de", options={"encoder_window_s": 0, "steady_input": False}
    )
    stt = registry.build("stt", provider, settings)  # the real tiny.en
    try:
        assert (stt._beam_size, stt._window_s, stt._steady, stt._language) == (2, 0.0, False, "de")
    finally:
        asyncio.run(stt.aclose())
