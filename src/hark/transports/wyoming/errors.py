"""The one error type of the Wyoming adapter: a code for the client and for metrics, and
whether the connection can go on after it."""

from __future__ import annotations


class WyomingError(Exception):
    """Sent to the client as a Wyoming ``error`` event ``{text, code}``. ``fatal``: the
    connection is closed after it (the byte stream can no longer be trusted)."""

    def __init__(self, code: str, text: str, *, fatal: bool = False) -> None:
        super().__init__(text)
        self.code = code
        self.text = text
        self.fatal = fatal
