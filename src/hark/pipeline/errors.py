"""What a conversation refuses, as one taxonomy: each error carries a stable ``code`` (the
OpenAI Realtime error code where one exists) and, where it concerns one field, the ``param``.

Transports map these onto their wire errors without looking at messages; built-in exceptions
(``ValueError``, ``KeyError``…) never cross the pipeline/transport boundary as a contract.
"""

from __future__ import annotations

from hark.errors import HarkError


class PipelineError(HarkError):
    code = "invalid_value"
    param: str | None = None

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if param is not None:
            self.param = param


class CommitTooShort(PipelineError):
    code = "input_audio_buffer_commit_empty"


class ResponseActive(PipelineError):
    code = "conversation_already_has_active_response"


class NoActiveResponse(PipelineError):
    code = "response_cancel_not_active"


class UnknownItem(PipelineError):
    code = "item_not_found"
    param = "item_id"


class DuplicateItem(PipelineError):
    code = "item_create_duplicate_item_id"
    param = "item.id"


class UnknownCall(PipelineError):
    """A function_call_output whose call_id names no function call of this conversation."""

    code = "function_call_not_found"
    param = "item.call_id"


class InvalidValue(PipelineError):
    code = "invalid_value"


class Unsupported(PipelineError):
    code = "unsupported"


class UnsupportedAudioFormat(Unsupported):
    code = "unsupported_audio_format"
