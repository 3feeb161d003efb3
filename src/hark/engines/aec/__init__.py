"""Acoustic echo cancellation (WebRTC AEC3): see ``canceller``."""

from hark.engines.aec.canceller import INSTALL, TAIL_MS, EchoCanceller, available
from hark.engines.aec.reference import FarEnd

__all__ = ["INSTALL", "TAIL_MS", "EchoCanceller", "FarEnd", "available"]
