"""A call's turns count the caller's coded tail (``webrtc.codec_tail_ms``): what the session's
settings carry through ``session.update``, and what the client is told."""

from __future__ import annotations

import dataclasses
from typing import Any

from hark.app import conversation_config
from hark.config import Settings
from hark.pipeline.turns import TurnConfig
from hark.transports import realtime_protocol as rp
from hark.transports.realtime_settings import SessionSettings


class Turns:
    """The part of a conversation that session.update configures."""

    def __init__(self) -> None:
        self.turn: TurnConfig | None = None
        self.turn_detection = True
        self.auto_respond = True
        self.interrupt = True

    def configure_turns(self, turn: TurnConfig | None, **_: Any) -> None:
        self.turn, self.turn_detection = turn, turn is not None


def call_settings(tail_ms: float) -> SessionSettings:
    config = conversation_config(Settings())
    return SessionSettings(
        dataclasses.replace(config, turn=dataclasses.replace(config.turn, coded_tail_ms=tail_ms))
    )


def test_the_default_setting_is_one_vad_chunk() -> None:
    assert Settings().webrtc.codec_tail_ms == 32
    assert TurnConfig(coded_tail_ms=Settings().webrtc.codec_tail_ms).tail_chunks == 1


def test_session_update_keeps_the_tail_and_reports_the_silence_asked_for() -> None:
    settings, turns = call_settings(32), Turns()
    detection = rp.TurnDetection.model_validate({"type": "server_vad", "silence_duration_ms": 500})
    settings.apply_turn_detection(detection, turns)  # type: ignore[arg-type]
    assert turns.turn is not None and turns.turn.coded_tail_ms == 32 and turns.turn.end_silence_ms == 500
    wire = settings.turn_detection_wire(turns)  # type: ignore[arg-type]
    assert wire is not None and wire["silence_duration_ms"] == 500  # what the client asked, not 468


def test_semantic_vad_on_a_call_keeps_the_tail() -> None:
    settings, turns = call_settings(32), Turns()
    settings.apply_turn_detection(rp.TurnDetection.model_validate({"type": "semantic_vad"}), turns)  # type: ignore[arg-type]
    assert turns.turn is not None and turns.turn.eagerness is not None and turns.turn.coded_tail_ms == 32


def test_a_websocket_session_has_no_tail() -> None:
    settings, turns = SessionSettings(conversation_config(Settings())), Turns()
    settings.apply_turn_detection(rp.TurnDetection.model_validate({"type": "server_vad"}), turns)  # type: ignore[arg-type]
    assert turns.turn is not None and turns.turn.coded_tail_ms == 0


def test_a_call_s_conversation_counts_the_tail() -> None:
    from types import SimpleNamespace

    from hark.app import make_conversation
    from tests.fakes import FakeLLM, FakeSTT, FakeTTS, LoudnessVAD

    engines = SimpleNamespace(vad=LoudnessVAD(), stt=FakeSTT(), tts=FakeTTS(), llm=FakeLLM(), turn=None)
    services: Any = SimpleNamespace(engines=engines)
    call = make_conversation(services, Settings(), sample_rate=48_000, coded_tail_ms=32)(lambda event: None)
    plain = make_conversation(services, Settings())(lambda event: None)
    assert call.config.turn.coded_tail_ms == 32 and plain.config.turn.coded_tail_ms == 0
    assert call.config.turn.end_silence_ms == plain.config.turn.end_silence_ms
