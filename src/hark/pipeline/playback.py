"""Where the listener is in the reply audio, and which words they have heard: pure functions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class PlaybackClock:
    """Estimates the client's playhead, assuming it plays what it receives in real time and
    restarts from the arrival of new audio after running dry."""

    def __init__(self) -> None:
        self.sent_ms = 0.0
        self.peak_ms = 0.0
        """The furthest position ever sent (a paused reply rewinds ``sent_ms`` to the playhead)."""
        self._anchor_time: float | None = None
        self._anchor_ms = 0.0

    def played_ms(self, now: float) -> float:
        if self._anchor_time is None:
            return 0.0
        return min(self.sent_ms, self._anchor_ms + (now - self._anchor_time) * 1000.0)

    def on_send(self, now: float, duration_ms: float) -> None:
        if self._anchor_time is None or self.played_ms(now) >= self.sent_ms:
            self._anchor_time = now
            self._anchor_ms = self.sent_ms
        self.sent_ms += duration_ms
        self.peak_ms = max(self.peak_ms, self.sent_ms)

    def wait_s(self, now: float, lead_ms: float) -> float:
        """Seconds to wait before more audio may be sent without running ``lead_ms`` ahead."""
        ahead = self.sent_ms - self.played_ms(now)
        return max(0.0, (ahead - lead_ms) / 1000.0)


@dataclass(frozen=True, slots=True)
class Segment:
    start_ms: float
    end_ms: float
    text: str


def heard_text(segments: Sequence[Segment], played_ms: float) -> str:
    """The words of ``segments`` heard by ``played_ms``; a sentence cut short keeps the share of
    its words that fits in the share of its audio that played."""
    words: list[str] = []
    for segment in segments:
        if played_ms >= segment.end_ms:
            words.extend(segment.text.split())
            continue
        if played_ms > segment.start_ms and segment.end_ms > segment.start_ms:
            share = (played_ms - segment.start_ms) / (segment.end_ms - segment.start_ms)
            parts = segment.text.split()
            words.extend(parts[: int(len(parts) * share)])
        break
    return " ".join(words)
