"""The transcription language over the Realtime protocol: session.update sets what the session's
STT is asked for (GA ``audio.input.transcription``, beta ``input_audio_transcription``), and
session.created/updated report it in OpenAI's shape (validated against the SDK's models)."""

from __future__ import annotations

from typing import Any

import pytest

from hark.engines.base import DETECT_LANGUAGE, asked_language
from hark.pipeline.errors import InvalidValue
from hark.pipeline.language import checked_language
from tests.fakes import quiet, tone
from tests.unit.test_realtime_semantic import append
from tests.unit.test_realtime_session import Backend, Wire, connect


def transcription(**fields: Any) -> dict[str, Any]:
    return {"type": "realtime", "audio": {"input": {"transcription": fields}}}


async def spoken_turn(wire: Wire) -> None:
    await append(wire, tone(600) + quiet(400))
    await wire.until("conversation.item.input_audio_transcription.completed")
    await wire.until("response.done")


def reported(event: dict[str, Any]) -> Any:
    return event["session"]["audio"]["input"]["transcription"]


async def test_the_language_set_is_the_one_transcribed_and_reported() -> None:
    backend = Backend()
    async with connect(backend) as wire:
        assert reported(wire.of("session.created")[0]) == {"model": "hark", "language": None}
        await wire.send(type="session.update", session=transcription(model="whisper-1", language="FR"))
        assert reported(await wire.until("session.updated")) == {"model": "whisper-1", "language": "fr"}
        await spoken_turn(wire)
        assert backend.stt.languages and set(backend.stt.languages) == {"fr"}

        await wire.send(type="session.update", session=transcription(model="whisper-1", language=None))
        assert reported(await wire.until("session.updated")) == {"model": "whisper-1", "language": None}
        calls = len(backend.stt.languages)
        await spoken_turn(wire)
        assert set(backend.stt.languages[calls:]) == {DETECT_LANGUAGE}

        # transcription null: hark always transcribes (the reply needs the words), in the
        # server's own language again.
        await wire.send(
            type="session.update", session={"type": "realtime", "audio": {"input": {"transcription": None}}}
        )
        assert reported(await wire.until("session.updated")) == {"model": "hark", "language": None}
        calls = len(backend.stt.languages)
        await spoken_turn(wire)
        assert set(backend.stt.languages[calls:]) == {None}


async def test_an_update_without_transcription_keeps_the_language() -> None:
    backend = Backend()
    async with connect(backend) as wire:
        await wire.send(type="session.update", session=transcription(language="de"))
        await wire.until("session.updated")
        await wire.send(type="session.update", session={"type": "realtime", "instructions": "Be terse."})
        assert reported(await wire.until("session.updated")) == {"model": "hark", "language": "de"}


@pytest.mark.parametrize("code", ["xx", "fr-FR", "french", ""])
async def test_a_code_that_is_not_iso_639_1_is_refused_and_changes_nothing(code: str) -> None:
    backend = Backend()
    async with connect(backend) as wire:
        await wire.send(
            type="session.update",
            event_id="ev_lang",
            session={**transcription(language=code), "instructions": "Never applied."},
        )
        error = (await wire.until("error"))["error"]
        assert (error["code"], error["event_id"]) == ("invalid_value", "ev_lang")
        assert error["param"] == "session.audio.input.transcription.language"
        assert "ISO-639-1" in error["message"]
        await wire.send(type="session.update", session={"type": "realtime"})
        updated = (await wire.until("session.updated"))["session"]
        assert updated["instructions"] != "Never applied."
        assert reported({"session": updated}) == {"model": "hark", "language": None}


async def test_the_beta_dialect_sets_and_reports_input_audio_transcription() -> None:
    backend = Backend()
    async with connect(backend, headers={"OpenAI-Beta": "realtime=v1"}) as wire:
        await wire.send(
            type="session.update",
            session={
                "turn_detection": None,
                "input_audio_transcription": {"model": "whisper-1", "language": "es"},
            },
        )
        updated = (await wire.until("session.updated"))["session"]
        assert updated["input_audio_transcription"] == {"model": "whisper-1", "language": "es"}


def test_checked_language_and_asked_language() -> None:
    assert checked_language(" Fr ", param="p") == "fr"
    with pytest.raises(InvalidValue) as raised:
        checked_language("zz", param="p")
    assert raised.value.param == "p"
    assert asked_language("fr", "en") == "fr"
    assert asked_language(None, "en") == "en"
    assert asked_language(DETECT_LANGUAGE, "en") is None
