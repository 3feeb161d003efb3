"""Admission control (hark.admission): new conversations refused past the configured capacity
or while the workers are saturated; the ones admitted are counted until they leave."""

from __future__ import annotations

from hark.admission import Admission
from hark.config import AdmissionSettings


def test_capacity_refuses_new_conversations_until_one_leaves() -> None:
    admission = Admission(AdmissionSettings(max_conversations=2, retry_after_s=7))
    assert admission.enter() is None and admission.enter() is None
    refusal = admission.enter()
    assert refusal is not None and refusal.reason == "capacity" and refusal.retry_after_s == 7
    assert admission.active == 2 and admission.refused["capacity"] == 1
    admission.leave()
    assert admission.check() is None and admission.enter() is None


def test_live_saturation_refuses_whatever_the_number() -> None:
    pressure = {"s": 0.4}
    windows: list[float] = []

    def pool_pressure(window_s: float) -> float:
        windows.append(window_s)
        return pressure["s"]

    admission = Admission(AdmissionSettings(max_wait_s=1.5, window_s=8.0), pool_pressure)
    assert admission.enter() is None  # no fixed number: only the live signal
    pressure["s"] = 2.0
    refusal = admission.enter()
    assert refusal is not None and refusal.reason == "saturated"
    assert windows[-1] == 8.0
    pressure["s"] = 0.2  # the line drained: admitted again
    assert admission.enter() is None and admission.active == 2


def test_the_live_check_can_be_turned_off_and_needs_a_pool() -> None:
    assert Admission(AdmissionSettings(max_wait_s=0.0), lambda _: 60.0).check() is None
    assert Admission(AdmissionSettings()).check() is None  # no worker pool: nothing saturates
    admission = Admission(AdmissionSettings())
    admission.leave()  # never below zero
    assert admission.active == 0
