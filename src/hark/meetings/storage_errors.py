"""What can go wrong with meeting recordings and results at rest."""

from __future__ import annotations

from hark.errors import HarkError


class StorageError(HarkError):
    """A recording or result could not be stored or read back."""


class MeetingNotFound(StorageError):
    """No such meeting is stored (never recorded, deleted, or swept by retention)."""


class RecordingRefused(StorageError):
    """Encryption is configured but unusable: nothing is recorded rather than plaintext stored."""


class TamperedData(StorageError):
    """A stored file failed authentication: modified or moved on disk, or encrypted with a key that is
    no longer configured."""
