"""Acoustic echo cancellation: hark's own voice taken out of what the listener's microphone
sends back, with WebRTC's AEC3 (PyPI ``pywebrtc-audio``, Apache-2.0).

``EchoCanceller`` is the one hook every path uses: ``played`` with the reply audio as it is
handed to the listener's speaker (optionally with the microphone position it starts playing
at), ``clear`` when the listener dropped what it had buffered, and ``heard`` with each piece of
microphone audio, which returns it with the echo removed. It knows nothing of sessions or wires.

Cost, measured on the 2-core VM while other work ran: 0.28-0.39 ms per 10 ms frame at 8, 16
and 24 kHz (0.09 ms on an idle core). That is too much to add to the event loop for every
session's every frame, so ``heard`` runs AEC3 on one thread shared by all sessions (it releases
the GIL); one thread keeps up with ~25-100 talking sessions. While nothing hark played can still
be echoing (no reply within the last ``TAIL_MS``), audio passes through untouched, without the
thread hop: AEC3 then costs nothing, and a listener who is not being answered is heard exactly
as without it.
"""

from __future__ import annotations

import asyncio
import functools
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from hark.audio import float_to_pcm16, pcm16_to_float
from hark.audio.polyphase import CausalResampler
from hark.engines.aec.presence import EchoPresence, frame_db
from hark.engines.aec.reference import FarEnd, MicClock
from hark.engines.base import Float32Array
from hark.errors import MissingDependency

INSTALL = "pip install 'pywebrtc-audio>=0.2,<0.3'"
TAIL_MS = 1000
"""How long after the last played sample an echo may still arrive: the 30-150 ms network and
device delay plus the room's reverberation, with margin."""
MAX_AHEAD_MS = 2000
"""The furthest ahead of what was read that reply audio is placed (a client sending audio
faster than real time has no clock to go by)."""
RATES = (8000, 16000, 24000, 32000, 48000)
"""Microphone rates run natively (AEC3 works at 16 kHz inside; the processor resamples)."""

_thread: ThreadPoolExecutor | None = None


@functools.cache
def available() -> bool:
    try:
        import pywebrtc_audio  # noqa: F401
    except ImportError:
        return False
    return True


def _executor() -> ThreadPoolExecutor:
    global _thread
    if _thread is None:
        _thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hark-aec")
    return _thread


class EchoCanceller:
    def __init__(self, near_rate: int, far_rate: int | None = None, *, tail_ms: int = TAIL_MS) -> None:
        """``near_rate``: the microphone's rate; ``far_rate``: the played audio's (default the same)."""
        if near_rate not in RATES:
            raise ValueError(f"echo cancellation runs at {RATES} Hz, not {near_rate}")
        try:
            from pywebrtc_audio import AudioProcessor
        except ImportError as exc:
            raise MissingDependency("pywebrtc-audio", INSTALL) from exc
        self.rate = near_rate
        self._processor: Any = AudioProcessor(sample_rate=near_rate, echo_cancellation=True)
        self._frame_bytes = near_rate // 100 * 2
        self._far = FarEnd(near_rate, tail_ms=tail_ms)
        self._clock = MicClock(near_rate)
        far_rate = far_rate or near_rate
        self._resampler = CausalResampler(far_rate, near_rate) if far_rate != near_rate else None
        self._pending = b""
        self._gap = False
        """Nothing could echo since the last cancelled frame: the presence check starts afresh."""
        """Microphone bytes short of a whole 10 ms frame, held for the next piece."""
        self.presence = EchoPresence()
        """Whether the played audio is in the microphone at all (else AEC3's output is unused)."""
        self.frames_cancelled = 0
        """10 ms frames whose echo-cancelled audio was used (the rest passed untouched)."""

    def played(self, pcm: bytes, *, at_ms: float | None = None, now: float | None = None) -> None:
        """Reply audio (PCM16 at the far rate) handed to the listener's speaker; ``at_ms``: where
        in the microphone stream (ms since its first sample) it starts playing, when known.
        Otherwise it follows what is queued, or, after the speaker ran dry, starts under the
        microphone sample being captured ``now`` (``time.monotonic()``)."""
        audio = pcm16_to_float(pcm)
        if self._resampler is not None:
            audio = self._resampler.process(audio)
        at = None if at_ms is None else int(at_ms * self.rate / 1000)
        if at is None and self._far.queued == 0:
            captured = self._clock.position(time.monotonic() if now is None else now)
            if captured is not None:
                lowest = self._far.position
                at = min(max(captured, lowest), lowest + self.rate * MAX_AHEAD_MS // 1000)
        self._far.play(audio, at=at)

    def clear(self) -> None:
        """The listener's speaker dropped what it had not played (a barge-in)."""
        self._far.clear()

    def process(self, pcm: bytes, *, now: float | None = None) -> bytes:
        """Microphone audio (PCM16 at the near rate), arrived ``now``, without the echo, on the
        calling thread: whole 10 ms frames only, a remainder is held for the next call."""
        near, far = self._split(pcm, now)
        if far is None:
            return near
        return self._cancel(near, far)

    async def heard(self, pcm: bytes) -> bytes:
        """As ``process``, with AEC3 on its own thread."""
        near, far = self._split(pcm, None)
        if far is None:
            return near
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(_executor(), self._cancel, near, far)

    def _split(self, pcm: bytes, now: float | None) -> tuple[bytes, Float32Array | None]:
        """(whole frames of microphone audio, the far end under them or None when no echo
        can be in them)."""
        data = self._pending + pcm if self._pending else pcm
        arrived = self._far.position + len(data) // 2
        self._clock.arrived(arrived, time.monotonic() if now is None else now)
        whole = len(data) - len(data) % self._frame_bytes
        near, self._pending = data[:whole], data[whole:]
        far, echo_possible = self._far.take(whole // 2)
        if not echo_possible:
            self._gap = True
        return near, (far if echo_possible and whole else None)

    def _cancel(self, near: bytes, far: Float32Array) -> bytes:
        # AEC3 always runs while an echo is possible, so that it keeps learning the room.
        mic = pcm16_to_float(near)
        out = self._processor.process(mic, np.ascontiguousarray(far))
        frame = self._frame_bytes // 2
        if self._gap:
            self._gap = False
            self.presence.gap()
            # A new reply after a stretch in which nothing could echo. Its echo may come at another
            # delay than the last reply's (where the client starts playing it is estimated anew),
            # and AEC3 follows a shorter delay slowly if at all: on a phone call the greeting's
            # echo came 297 ms after its reference, the answer's 65 ms, and the answer and every
            # reply after it passed uncancelled. Afresh, AEC3 finds the delay as for a first reply.
            self._processor.reset()
        self.presence.push(frame_db(far, frame), frame_db(mic, frame))
        if self.presence.present is False:
            return near
        self.frames_cancelled += len(near) // self._frame_bytes
        return float_to_pcm16(np.asarray(out, dtype=np.float32))
