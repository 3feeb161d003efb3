"""Processing of the microphone audio before it is listened to: echo cancellation."""

from __future__ import annotations

from typing import Literal

from hark.config.base import Section
from hark.errors import ConfigError


class AudioSettings(Section):
    echo_cancellation: Literal["auto", "on", "off"] = "auto"
    """Take hark's own voice out of the listener's microphone audio (WebRTC AEC3, needs
    ``pywebrtc-audio``). ``auto``: on for the phone path (``/twilio/stream``), where hark paces
    the playback and the caller's handset or speakerphone leaks it back, when the package is
    installed; off for the Realtime WebSocket, whose clients (browsers, agent SDKs) cancel their
    own echo and whose playback hark does not see (there, a second canceller held back the
    user's first words: docs/turn-taking.md), and for WebRTC calls, whose browsers cancel their
    own. ``on``: every path, and a missing package stops the server at start; ``off``: never."""

    def echo_cancelled(self, installed: bool, *, by_default: bool = True) -> bool:
        """Whether a path cancels echo, given whether AEC3 is installed; ``by_default``: whether
        that path cancels under ``auto``."""
        if self.echo_cancellation == "on" and not installed:
            raise ConfigError(
                "audio.echo_cancellation is on but pywebrtc-audio is not installed; "
                "install it with: pip install 'pywebrtc-audio>=0.2,<0.3'"
            )
        if self.echo_cancellation == "auto":
            return by_default and installed
        return self.echo_cancellation == "on"
