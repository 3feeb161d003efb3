"""Reading the settings once: YAML files, then ``HARK_*`` environment variables.

Sources, later ones winning: built-in defaults, ``/etc/hark/config.yaml`` when present, the
file named by ``--config`` or ``HARK_CONFIG``, then ``HARK_*`` environment variables. A section
and its key are joined by one underscore: ``HARK_LLM_BASE_URL`` sets ``llm.base_url``, and
``HARK_STT_FASTER_WHISPER_MODEL`` sets one of a local engine's options, ``stt.faster_whisper.model``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from hark.config.engine_options import EngineOptions
from hark.config.settings import Settings
from hark.errors import ConfigError

SYSTEM_CONFIG = Path("/etc/hark/config.yaml")


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of sections, not {type(data).__name__}")
    return data


def _environment_name(loc: tuple[int | str, ...]) -> str:
    """``HARK_<SECTION>_<KEY>``; for one of a local engine's options (``stt.faster_whisper.model``)
    ``HARK_<SECTION>_<OPTIONS>_<KEY>``."""
    depth = 2
    section = Settings.model_fields.get(str(loc[0]))
    if section is not None and len(loc) >= 3 and isinstance(section.annotation, type):
        owner = getattr(section.annotation, "model_fields", {}).get(str(loc[1]))
        options = owner.annotation if owner is not None else None
        if isinstance(options, type) and issubclass(options, EngineOptions):
            depth = 3
    return "HARK_" + "_".join(str(part) for part in loc[:depth]).upper()


def _describe(exc: ValidationError, source: str) -> str:
    lines = [f"invalid configuration ({source}):"]
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"])
        env = _environment_name(error["loc"])
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown setting"
        lines.append(f"  {key}: {message} (YAML key '{key}' or environment {env})")
    return "\n".join(lines)


def load_settings(config_file: str | Path | None = None) -> Settings:
    """Read the settings once. Raises ConfigError naming the offending key."""
    data: dict[str, Any] = {}
    sources: list[str] = []
    if SYSTEM_CONFIG.is_file():
        data = _deep_merge(data, _read_yaml(SYSTEM_CONFIG))
        sources.append(str(SYSTEM_CONFIG))
    named = config_file or os.environ.get("HARK_CONFIG")
    if named:
        path = Path(named)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        data = _deep_merge(data, _read_yaml(path))
        sources.append(str(path))
    source = ", ".join([*sources, "HARK_* environment"])
    # Checked before the environment is merged in, which would silently replace a bad section.
    for section, value in data.items():
        if section in Settings.model_fields and not isinstance(value, dict):
            raise ConfigError(
                f"invalid configuration ({source}):\n  {section}: Input should be a valid dictionary "
                f"(YAML key '{section}' or environment HARK_{section.upper()})"
            )
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source)) from exc
