"""Processing of the microphone audio before it is listened to: echo cancellation."""

from __future__ import annotations

from typing import Literal

from hark.config.base import Section
from hark.errors import ConfigError


class AudioSettings(Section):
    echo_cancellation: Literal["auto", "on", "off"] = "auto"
    """Take hark's own voice out of the listener's microphone audio (WebRTC AEC3, needs
    ``pywebrtc-audio``). ``auto``: on for every path hark paces the playback of (phone,
    WebSocket, WebRTC) when the package is installed; ``on``: the same, and a missing package
    stops the server at start; ``off``: never. Measured reasons: docs/turn-taking.md."""

    def echo_cancelled(self, installed: bool) -> bool:
        """Whether the paths hark paces cancel echo, given whether AEC3 is installed."""
        if self.echo_cancellation == "on" and not installed:
            raise ConfigError(
                "audio.echo_cancellation is on but pywebrtc-audio is not installed; "
                "install it with: pip install 'pywebrtc-audio>=0.2,<0.3'"
            )
        return self.echo_cancellation != "off" and installed
