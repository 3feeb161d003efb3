"""Faster or slower speech at the same pitch."""

from __future__ import annotations

import numpy as np


def _tempo_steps(speed: float) -> list[float]:
    """ffmpeg's atempo takes 0.5-2.0 per instance; chain instances for the rest."""
    steps: list[float] = []
    while speed > 2.0:
        steps.append(2.0)
        speed /= 2.0
    while speed < 0.5:
        steps.append(0.5)
        speed /= 0.5
    return [*steps, speed]


def change_speed(pcm: bytes, rate: int, speed: float) -> bytes:
    """Faster or slower speech at the same pitch (ffmpeg's atempo filter). Blocking."""
    import av

    if speed == 1.0 or not pcm:
        return pcm
    graph = av.filter.Graph()
    node = graph.add_abuffer(format="s16", sample_rate=rate, layout="mono")
    for step in _tempo_steps(speed):
        tempo = graph.add("atempo", f"{step:.6f}")
        node.link_to(tempo)
        node = tempo
    sink = graph.add("abuffersink")
    node.link_to(sink)
    graph.configure()
    frame = av.AudioFrame.from_ndarray(
        np.frombuffer(pcm, dtype="<i2").reshape(1, -1), format="s16", layout="mono"
    )
    frame.sample_rate = rate
    graph.push(frame)
    graph.push(None)
    out = bytearray()
    while True:
        try:
            result = graph.pull()
        except (av.error.EOFError, av.error.BlockingIOError):
            break
        out += result.to_ndarray().astype("<i2").tobytes()
    return bytes(out)
