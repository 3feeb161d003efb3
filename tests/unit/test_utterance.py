import numpy as np

from hark.pipeline.utterance import INITIAL_CHUNKS, Utterance


def chunk(value: float, samples: int = 4) -> np.ndarray:
    return np.full(samples, value, dtype=np.float32)


def test_an_utterance_is_its_chunks_in_order() -> None:
    utterance = Utterance(4, max_chunks=1000)
    assert len(utterance) == 0 and utterance.audio().size == 0
    utterance.restart([chunk(1), chunk(2)])
    utterance.append(chunk(3))
    assert len(utterance) == 3
    assert utterance.audio().tolist() == [1.0] * 4 + [2.0] * 4 + [3.0] * 4


def test_only_the_newest_chunks_are_kept() -> None:
    utterance = Utterance(4, max_chunks=3)
    utterance.extend(chunk(float(i)) for i in range(10))
    assert len(utterance) == 3
    assert utterance.audio().tolist() == [7.0] * 4 + [8.0] * 4 + [9.0] * 4


def test_it_grows_past_its_first_room_without_losing_audio() -> None:
    utterance = Utterance(4, max_chunks=10 * INITIAL_CHUNKS)
    values = [float(i) for i in range(3 * INITIAL_CHUNKS + 1)]
    utterance.extend(chunk(v) for v in values)
    assert len(utterance) == len(values)
    assert utterance.audio()[::4].tolist() == values


def test_audio_handed_out_is_never_changed_afterwards() -> None:
    utterance = Utterance(4, max_chunks=2)
    utterance.extend([chunk(1), chunk(2)])
    copy = utterance.audio()
    taken = utterance.take()
    assert len(utterance) == 0
    utterance.extend(chunk(float(v)) for v in range(3, 3 + 4 * INITIAL_CHUNKS))  # grows, trims
    utterance.clear()
    utterance.append(chunk(9))
    assert copy.tolist() == taken.tolist() == [1.0] * 4 + [2.0] * 4
