"""Reading a PyTorch ``state_dict`` file (``torch.save`` zip format) without torch.

A ``.pt`` file is a zip: ``<root>/data.pkl`` (a pickle of the dict, whose tensors point at
storages by key) and ``<root>/data/<key>`` (each storage's raw little-endian bytes). Unpickling
an arbitrary file runs whatever callables it names, so the unpickler here resolves only the
four globals a plain ``state_dict`` of tensors uses and refuses everything else with
:class:`CheckpointRefused` before anything runs. Tensors come back as read-only-free numpy
arrays (copied out of the zip).
"""

from __future__ import annotations

import collections
import io
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from hark.errors import HarkError

_STORAGE_DTYPES: dict[str, npt.DTypeLike] = {
    "FloatStorage": "<f4",
    "DoubleStorage": "<f8",
    "HalfStorage": "<f2",
    "LongStorage": "<i8",
    "IntStorage": "<i4",
    "ShortStorage": "<i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "?",
}


class CheckpointRefused(HarkError):
    """The file is not a plain state_dict of tensors (or is not a torch zip at all)."""


class _StorageType:
    def __init__(self, dtype: npt.DTypeLike) -> None:
        self.dtype = np.dtype(dtype)


def _rebuild_tensor(
    storage: npt.NDArray[Any],
    offset: int,
    size: tuple[int, ...],
    stride: tuple[int, ...],
    *_: Any,
) -> npt.NDArray[Any]:
    if not size:
        return storage[offset : offset + 1].reshape(()).copy()
    itemsize = storage.dtype.itemsize
    needed = offset + 1 + sum((n - 1) * s for n, s in zip(size, stride, strict=True) if n > 0)
    if offset < 0 or any(s < 0 for s in stride) or needed > storage.size:
        raise CheckpointRefused("a tensor reaches outside its storage")
    view = np.lib.stride_tricks.as_strided(
        storage[offset:], shape=size, strides=tuple(s * itemsize for s in stride), writeable=False
    )
    return np.array(view)  # a contiguous copy


def _ordered_dict(*args: Any) -> collections.OrderedDict[Any, Any]:
    return collections.OrderedDict(*args)


class _Unpickler(pickle.Unpickler):
    def __init__(self, data: bytes, archive: zipfile.ZipFile, root: str) -> None:
        super().__init__(io.BytesIO(data))
        self._archive = archive
        self._root = root
        self._storages: dict[str, npt.NDArray[Any]] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor
        if module == "collections" and name == "OrderedDict":
            return _ordered_dict
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        raise CheckpointRefused(f"the checkpoint names {module}.{name}; only tensors are accepted")

    def persistent_load(self, pid: Any) -> npt.NDArray[Any]:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise CheckpointRefused("the checkpoint holds an unknown persistent object")
        _, kind, key, _location, numel = pid
        if not isinstance(kind, _StorageType) or not isinstance(key, str) or not key.isalnum():
            raise CheckpointRefused("the checkpoint holds a storage of an unknown type")
        if key not in self._storages:
            raw = self._archive.read(f"{self._root}/data/{key}")
            array = np.frombuffer(raw, dtype=kind.dtype)
            if isinstance(numel, int) and array.size < numel:
                raise CheckpointRefused(f"storage {key} is shorter than it says")
            self._storages[key] = array
        return self._storages[key]


def load_state_dict(path: Path) -> dict[str, npt.NDArray[Any]]:
    """The tensors of a ``torch.save``d state_dict, by name. Raises CheckpointRefused (a bad or
    unsafe file) or OSError (unreadable)."""
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise CheckpointRefused(f"{path.name} is not a torch zip checkpoint") from None
    with archive:
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pickles) != 1:
            raise CheckpointRefused(f"{path.name} has no single data.pkl")
        root = pickles[0].split("/")[0]
        unpickler = _Unpickler(archive.read(pickles[0]), archive, root)
        try:
            state = unpickler.load()
        except CheckpointRefused:
            raise
        except (pickle.UnpicklingError, EOFError, KeyError, ValueError, TypeError, AttributeError) as exc:
            raise CheckpointRefused(f"{path.name} cannot be read: {type(exc).__name__}: {exc}") from None
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, np.ndarray) for k, v in state.items()
    ):
        raise CheckpointRefused(f"{path.name} is not a dict of named tensors")
    return dict(state)
