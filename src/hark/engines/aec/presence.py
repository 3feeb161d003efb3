"""Is hark's voice in the microphone at all? A pure core, from 10 ms loudness envelopes.

AEC3 starts out assuming an echo and suppresses the microphone while the far end plays, until
its filter has learnt the room; where the client has already removed the echo (a browser's
getUserMedia, a phone's own canceller) there is nothing to learn, and the user barging in over
the first reply was suppressed for over a second (bench corpus (d): 1340 ms instead of 100 ms
to the speech start). So the canceller's output is used only while the microphone's loudness
follows the played audio's at some delay: the best Pearson correlation of the two log-energy
envelopes over ``LAGS`` 10 ms frames of delay, on the last ``WINDOW`` frames since the last
stretch in which nothing could echo. Until enough has played to tell, the last decision holds,
and at first the output is used (a missed self-interruption costs more than a late one).
"""

from __future__ import annotations

import collections

import numpy as np

from hark.engines.base import Float32Array

WINDOW = 200
"""Frames (2 s) the decision looks back over."""
LAGS = 40
"""Delays tried: 0-390 ms (network, device buffers and the room)."""
MIN_PLAYED = 50
"""Frames of audible far end (0.5 s) in the window before anything is decided."""
FLOOR_DB = -60.0
AUDIBLE_DB = -45.0
THRESHOLD = 0.5
"""Correlation at or above which the played audio is taken to be in the microphone (echo
through a room: 0.7-0.98 on the bench and a phone call; no echo: below 0.2)."""
KEEP = 0.3
"""Once in, an echo is taken to be gone only below this: the user talking over a reply lowers
the correlation for a while (0.49-0.57 on a phone call), and letting the echo through then
made the reply interrupt itself."""
DECIDE_EVERY = 10


def frame_db(audio: Float32Array, frame: int) -> Float32Array:
    """Log energy (dBFS) of each whole ``frame``-sample frame."""
    n = audio.size // frame
    if n == 0:
        return np.zeros(0, dtype=np.float32)
    power = np.mean(audio[: n * frame].reshape(n, frame).astype(np.float64) ** 2, axis=1)
    levels: Float32Array = np.maximum(10 * np.log10(power + 1e-12), FLOOR_DB).astype(np.float32)
    return levels


class EchoPresence:
    def __init__(self) -> None:
        self._far: collections.deque[float] = collections.deque(maxlen=WINDOW + LAGS)
        self._near: collections.deque[float] = collections.deque(maxlen=WINDOW + LAGS)
        self._since = 0
        self.present: bool | None = None
        """None until enough has played to tell."""
        self.score = 0.0

    def gap(self) -> None:
        """Nothing played could echo for a while: start the envelopes afresh (the user's words
        in between say nothing about the echo), keeping the last decision."""
        self._far.clear()
        self._near.clear()
        self._since = 0

    def push(self, far_db: Float32Array, near_db: Float32Array) -> bool | None:
        self._far.extend(far_db.tolist())
        self._near.extend(near_db.tolist())
        self._since += len(far_db)
        if self._since >= DECIDE_EVERY:
            self._since = 0
            self._decide()
        return self.present

    def _decide(self) -> None:
        far = np.asarray(self._far, dtype=np.float64)
        near = np.asarray(self._near, dtype=np.float64)
        if far.size < LAGS + MIN_PLAYED:
            return
        window = min(WINDOW, far.size - LAGS)
        heard = near[-window:]
        if np.count_nonzero(far[-window - LAGS :] > AUDIBLE_DB) < MIN_PLAYED:
            return  # too little played lately to tell either way: keep the last decision
        if heard.std() < 1e-6:
            self.score, self.present = 0.0, False  # a silent microphone: nothing to cancel
            return
        # Every delay at once: row k of ``played`` is the far end ``LAGS - 1 - k`` frames back.
        played = np.lib.stride_tricks.sliding_window_view(far[far.size - window - LAGS + 1 :], window)
        played = played - played.mean(axis=1, keepdims=True)
        heard = heard - heard.mean()
        norms = np.linalg.norm(played, axis=1) * np.linalg.norm(heard)
        scores = np.divide(played @ heard, norms, out=np.full(LAGS, -1.0), where=norms > 1e-9)
        best = float(scores.max())
        self.score = best
        self.present = best >= (KEEP if self.present else THRESHOLD)
