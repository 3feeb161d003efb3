"""Fixtures the contract tests share."""

from __future__ import annotations

from typing import Any

import pytest

from hark.audio import pcm16_to_float
from hark.engines.base import Float32Array
from tests.speech import speak


@pytest.fixture
def fake(server: tuple[Any, Any]) -> Any:
    """The module's stand-in (the first item of its ``server`` fixture), reset for this test."""
    stand_in = server[0]
    stand_in.reset()
    return stand_in


UTTERANCE = "Turn on the kitchen lights, and set a timer for ten minutes."


@pytest.fixture(scope="module")
def pcm() -> bytes:
    """Real speech (espeak-ng) at 16 kHz, as PCM16: what an STT stand-in must receive byte for byte."""
    return speak(UTTERANCE, rate=16000)


@pytest.fixture
def audio(pcm: bytes) -> Float32Array:
    return pcm16_to_float(pcm)
