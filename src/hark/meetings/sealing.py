"""Meeting files at rest: sealed with the configured keys, and written atomically.

With keys configured every file except ``meta.json`` is a Fernet token (MultiFernet: the newest key
encrypts, any configured key decrypts, so files stay readable after rotation); a configured key that
is not a valid Fernet key refuses to record rather than store plaintext. Without keys the files
hold raw bytes and ``meta.json`` says so.

Fernet authenticates each token on its own, so an encrypted payload starts with a label naming its
meeting and position (``<id>/chunk-000003``, ``/last`` on the final chunk): chunks moved between
meetings, reordered or dropped from the end are reported as tampering, not read back as audio.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from hark.meetings.storage_errors import RecordingRefused, StorageError, TamperedData

Pcm = bytes | bytearray | memoryview


def _cipher(keys: Sequence[str]) -> MultiFernet | None:
    if isinstance(keys, str | bytes):
        raise TypeError("keys must be a sequence of Fernet keys, not a single key")
    fernets: list[Fernet] = []
    for index, key in enumerate(keys):
        try:
            fernets.append(Fernet(key))
        except (ValueError, TypeError):
            # Never the key itself in the message: it may be a real key with a typo.
            raise RecordingRefused(
                f"meetings.encryption_keys[{index}] is not a valid Fernet key (32 url-safe base64-encoded"
                " bytes); refusing to record rather than store plaintext. Generate one with: python -c"
                " 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
            ) from None
    return MultiFernet(fernets) if fernets else None


class Sealer:
    """Seals and unseals payloads with ``keys``; without keys, passes them through unchanged.
    Raises RecordingRefused at once for a key that is not a valid Fernet key."""

    def __init__(self, keys: Sequence[str]) -> None:
        self._cipher = _cipher(keys)

    @property
    def encrypted(self) -> bool:
        return self._cipher is not None

    def seal(self, label: str, data: Pcm) -> Pcm:
        if self._cipher is None:
            return data
        return self._cipher.encrypt(b"".join((label.encode(), b"\n", data)))

    def unseal(self, label: str, stored: bytes, what: str) -> bytes:
        """The payload sealed under ``label``; TamperedData (naming ``what``) when it fails
        authentication or was sealed under another label."""
        if self._cipher is None:
            return stored
        try:
            plain = self._cipher.decrypt(stored)
        except InvalidToken:
            raise TamperedData(
                f"{what} failed authentication: modified on disk, or encrypted with a key that is no"
                " longer configured"
            ) from None
        header = label.encode() + b"\n"
        if not plain.startswith(header):
            raise TamperedData(f"{what} was moved: it belongs to another meeting or position")
        return plain[len(header) :]


def chunk_label(meeting_id: str, index: int, *, last: bool) -> str:
    return f"{meeting_id}/chunk-{index:06d}" + ("/last" if last else "")


def write_atomic(path: Path, data: Pcm) -> None:
    """Write via a temporary file (mode 0600) and ``os.replace``: readers never see half a file."""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError as exc:
        raise StorageError(f"could not write {path.parent.name}/{path.name}: {exc.strerror or exc}") from exc
