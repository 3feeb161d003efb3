"""Meeting data at rest: recordings and results, encrypted when keys are configured."""

from hark.storage.recordings import (
    MeetingNotFound,
    MeetingStore,
    RecordingRefused,
    RecordingWriter,
    StorageError,
    TamperedData,
    validate_meeting_id,
)

__all__ = [
    "MeetingNotFound",
    "MeetingStore",
    "RecordingRefused",
    "RecordingWriter",
    "StorageError",
    "TamperedData",
    "validate_meeting_id",
]
