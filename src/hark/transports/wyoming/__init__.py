"""Wyoming (Home Assistant's voice protocol) over TCP: a thin adapter over hark's engines.

The ``wyoming`` library frames and parses events; these modules only map them onto the STT, TTS
and LLM chains, one concept each: ``framing`` (bounded reads), ``audio_in``, ``asr``, ``tts``,
``handle``, ``info``, ``connection`` (dispatch), ``server`` (listen, admit, stop), ``zeroconf``.
See docs/wyoming.md.
"""

from __future__ import annotations

from hark.transports.wyoming.server import WyomingServer, check_startup, services

__all__ = ["WyomingServer", "check_startup", "services"]
