"""Meetings end to end: a real hark process, the real local models, two espeak-ng voices.

The meeting is streamed over ``/v1/meetings/stream`` at real-time pace; the summary comes from a
loopback OpenAI-compatible stand-in whose first reply is not valid JSON (so repair runs).
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from cryptography.fernet import Fernet

from hark.config import Settings
from hark.meetings.service import MeetingRefused, MeetingService
from tests.servers import FakeChatLLM, HarkProcess, ThreadedServer
from tests.speech import silence, speak

pytestmark = pytest.mark.slow

RATE = 16_000
MALE, FEMALE = "en-us", "en-us+f3"
SCRIPT = [
    (MALE, "Good morning everyone. Let's review the launch plan for the new release."),
    (FEMALE, "I think we should ship it on Friday, after the final tests pass."),
    (MALE, "Agreed. Maria will update the documentation by Thursday."),
    (FEMALE, "Great. I will send the announcement to our customers next week."),
]
SUMMARY = {
    "summary": "The team reviewed the launch plan and agreed to ship the release on Friday.",
    "decisions": ["Ship the release on Friday after the final tests pass."],
    "actions": [
        {"task": "Update the documentation", "owner": "Maria", "due": "Thursday"},
        {"task": "Send the announcement to customers", "owner": "S2", "due": "next week"},
    ],
}
INVALID = 'Sure! Here are the minutes: {"summary": "The team met", "actions": [{"task": '


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z']+", text.lower()))


def meeting_audio(script: list[tuple[str, str]] = SCRIPT, gap_ms: int = 800) -> bytes:
    pcm = silence(300, RATE)
    for voice, text in script:
        pcm += speak(text, voice=voice, rate=RATE) + silence(gap_ms, RATE)
    return pcm + silence(700, RATE)


def stream_url(server: HarkProcess) -> str:
    return f"ws://127.0.0.1:{server.port}/v1/meetings/stream"


@dataclass
class Session:
    events: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    stop_sent_at: float = 0.0

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for _, e in self.events if e["type"] == kind]

    def first_time(self, kind: str) -> float:
        return next(t for t, e in self.events if e["type"] == kind)


async def _collect(ws: Any, session: Session, until: str) -> None:
    async for message in ws:
        event = json.loads(message)
        session.events.append((time.monotonic(), event))
        if event["type"] == until:
            return


async def stream(
    server: HarkProcess,
    pcm: bytes,
    *,
    frame_ms: int = 20,
    realtime: bool = True,
    start: dict[str, Any] | None = None,
    wait_final: bool = True,
    until: str = "final",
    timeout: float = 120,
) -> Session:
    """Send ``start``, ``pcm`` in frames (at real-time pace unless told), ``stop``; collect events
    until ``until`` (or until ``stopped`` and then hang up when ``wait_final`` is False)."""
    session = Session()
    frame = RATE * 2 * frame_ms // 1000
    async with websockets.connect(stream_url(server), max_size=None) as ws:
        await ws.send(json.dumps({"type": "start", "sample_rate": RATE, **(start or {})}))
        started = json.loads(await ws.recv())
        assert started["type"] == "started", started
        session.events.append((time.monotonic(), started))
        reader = asyncio.create_task(_collect(ws, session, until if wait_final else "stopped"))
        begin = time.monotonic()
        for n, offset in enumerate(range(0, len(pcm), frame)):
            await ws.send(pcm[offset : offset + frame])
            if realtime:
                await asyncio.sleep(max(0.0, begin + (n + 1) * frame_ms / 1000 - time.monotonic()))
        session.stop_sent_at = time.monotonic()
        await ws.send(json.dumps({"type": "stop"}))
        async with asyncio.timeout(timeout):
            await reader
    return session


async def wait_completed(server: HarkProcess, meeting_id: str, timeout: float = 90) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=server.base_url) as client, asyncio.timeout(timeout):
        while True:
            response = await client.get(f"/v1/meetings/{meeting_id}")
            if response.status_code == 200:
                body: dict[str, Any] = response.json()
                return body
            assert response.status_code == 202, response.text
            assert response.json()["status"] in {"recording", "processing"}
            await asyncio.sleep(0.25)


@pytest.fixture(scope="module")
def summary_llm() -> Iterator[tuple[FakeChatLLM, ThreadedServer]]:
    llm = FakeChatLLM(replies=[INVALID, json.dumps(SUMMARY)], reply=json.dumps(SUMMARY))
    with ThreadedServer(llm.app()) as server:
        yield llm, server


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("meetings-data")


@pytest.fixture(scope="module")
def meeting_server(
    summary_llm: tuple[FakeChatLLM, ThreadedServer], data_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[HarkProcess]:
    _, llm_server = summary_llm
    env = {
        "HARK_LLM_BASE_URL": llm_server.base_url + "/v1",
        "HARK_LLM_MODEL": "stand-in",
        "HARK_MEETINGS_DATA_DIR": str(data_dir),
        "HARK_MEETINGS_ENCRYPTION_KEYS": json.dumps([Fernet.generate_key().decode()]),
        "HARK_MEETINGS_SPEAK_SUMMARY": "true",
    }
    log = tmp_path_factory.mktemp("hark-meetings") / "server.log"
    with HarkProcess(env=env, log_path=log) as server:
        yield server


async def test_a_two_voice_meeting_is_transcribed_diarised_and_summarised(
    meeting_server: HarkProcess, summary_llm: tuple[FakeChatLLM, ThreadedServer], data_dir: Path
) -> None:
    llm, _ = summary_llm
    requests_before = len(llm.requests)
    pcm = meeting_audio()
    session = await stream(meeting_server, pcm, until="summary_audio.done")
    final = session.of("final")[0]
    meeting_id = final["meeting_id"]
    took = session.first_time("final") - session.stop_sent_at
    print(f"\n{len(pcm) / 2 / RATE:.1f} s meeting; stop → final in {took * 1000:.0f} ms")

    # Partial transcripts arrived while the audio was still streaming, with times and speakers.
    partials = session.of("partial_transcript")
    early = [t for t, e in session.events if e["type"] == "partial_transcript" and t < session.stop_sent_at]
    assert len(early) >= 2, partials
    assert all(p["meeting_id"] == meeting_id and p["end"] > p["start"] >= 0 for p in partials)
    assert any(p["final"] and p["speaker"] for p in partials)
    assert session.of("stopped")[0]["reason"] == "client"

    # The final transcript: the words, in order, two speakers alternating, times increasing.
    transcript = final["transcript"]
    heard = words(" ".join(s["text"] for s in transcript))
    assert {"morning", "friday", "documentation", "thursday", "customers"} <= heard, transcript
    starts = [s["start"] for s in transcript]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)
    assert all(s["end"] > s["start"] for s in transcript)
    assert len({s["speaker"] for s in transcript}) >= 2, transcript
    assert final["speakers"][:2] == ["S1", "S2"]
    assert final["diarization"] == "campplus"
    by_sentence = [speaker_of(transcript, key) for key in ("morning", "friday", "documentation", "customers")]
    assert by_sentence == ["S1", "S2", "S1", "S2"], transcript
    assert final["duration_s"] == pytest.approx(len(pcm) / 2 / RATE, abs=0.2)

    # The summary came from the stand-in, after one repair round.
    assert final["status"] == "completed"
    assert final["summary"] == SUMMARY["summary"]
    assert final["summary_error"] is None
    assert final["decisions"] == SUMMARY["decisions"]
    assert final["actions"] == SUMMARY["actions"]
    assert len(llm.requests) - requests_before == 2
    # meetings.speak_summary: the summary read aloud after final.
    assert session.of("started")[0]["speak_summary"] is True
    spoken = b"".join(base64.b64decode(e["audio"]) for e in session.of("summary_audio.delta"))
    assert session.first_time("summary_audio.delta") > session.first_time("final")
    assert session.of("summary_audio.done")[0]["sample_rate"] == 24_000
    assert 2.0 < len(spoken) / 2 / 24_000 < 15.0
    repair = llm.requests[requests_before + 1]["body"]["messages"]
    assert any("not valid" in m["content"] for m in repair if m["role"] == "user")
    first_prompt = llm.requests[requests_before]["body"]["messages"]
    assert "S1:" in first_prompt[1]["content"] and "S2:" in first_prompt[1]["content"]

    # GET returns the same result; DELETE removes audio and result.
    async with httpx.AsyncClient(base_url=meeting_server.base_url) as client:
        got = await client.get(f"/v1/meetings/{meeting_id}")
        assert got.status_code == 200
        assert got.json() == {k: v for k, v in final.items() if k != "type"}
        stored = [p for p in stored_files(data_dir, meeting_id) if p.is_file()]
        assert any(p.name.startswith("chunk-") for p in stored)
        # Encrypted at rest: no plain words in any stored file.
        assert all(b"Maria" not in p.read_bytes() and b"Thursday" not in p.read_bytes() for p in stored)
        deleted = await client.delete(f"/v1/meetings/{meeting_id}")
        assert deleted.status_code == 200 and deleted.json() == {"meeting_id": meeting_id, "deleted": True}
        assert (await client.get(f"/v1/meetings/{meeting_id}")).status_code == 404
        assert (await client.delete(f"/v1/meetings/{meeting_id}")).status_code == 404
    assert stored_files(data_dir, meeting_id) == []
    # The server logged figures and a digest of the id, never the id or what was said.
    assert meeting_server.log_path is not None
    log = meeting_server.log_path.read_text(encoding="utf-8")
    assert meeting_id not in log and "meeting=mtg#" in log
    assert not {"maria", "thursday", "customers", "morning"} & words(log)


def stored_files(data_dir: Path, meeting_id: str) -> list[Path]:
    """Every file or directory under the data directory that belongs to the meeting."""
    return [path for path in data_dir.rglob("*") if meeting_id in str(path)]


def speaker_of(transcript: list[dict[str, Any]], word: str) -> str | None:
    return next((s["speaker"] for s in transcript if word in words(s["text"])), None)


async def test_the_result_is_stored_when_the_client_leaves_right_after_stop(
    meeting_server: HarkProcess,
) -> None:
    script = SCRIPT[:2]
    session = await stream(meeting_server, meeting_audio(script), realtime=False, wait_final=False)
    meeting_id = session.of("started")[0]["meeting_id"]
    # The socket is closed now; the job goes on and GET answers 202 until it is done.
    result = await wait_completed(meeting_server, meeting_id)
    assert result["status"] == "completed" and result["meeting_id"] == meeting_id
    heard = words(" ".join(s["text"] for s in result["transcript"]))
    assert {"morning", "friday"} <= heard
    assert result["summary"] == SUMMARY["summary"]
    async with httpx.AsyncClient(base_url=meeting_server.base_url) as client:
        assert (await client.delete(f"/v1/meetings/{meeting_id}")).status_code == 200


async def test_without_a_language_model_the_transcript_comes_without_a_summary(
    hark_server: HarkProcess,
) -> None:
    session = await stream(hark_server, meeting_audio(SCRIPT[:1]), realtime=False)
    final = session.of("final")[0]
    assert {"morning", "release"} <= words(" ".join(s["text"] for s in final["transcript"]))
    assert final["transcript"][0]["speaker"] == "S1"
    assert final["summary"] is None
    assert final["summary_error"] == "no language model is configured (set HARK_LLM_BASE_URL)"
    assert final["actions"] == [] and final["decisions"] == []
    assert session.of("started")[0]["summary"] is False
    async with httpx.AsyncClient(base_url=hark_server.base_url) as client:
        assert (await client.delete(f"/v1/meetings/{final['meeting_id']}")).status_code == 200


async def recv_until(ws: Any, kind: str, timeout: float = 30) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            event: dict[str, Any] = json.loads(await ws.recv())
            if event["type"] == kind:
                return event


async def expect_error(ws: Any, code: str) -> dict[str, Any]:
    event = await recv_until(ws, "error", timeout=10)
    assert event["error"]["code"] == code, event
    return event


async def test_bad_messages_get_error_events_and_the_session_survives(hark_server: HarkProcess) -> None:
    async with websockets.connect(stream_url(hark_server)) as ws:
        await ws.send(bytes(640))
        await expect_error(ws, "not_started")
        await ws.send("{not json")
        await expect_error(ws, "invalid_json")
        await ws.send(json.dumps({"type": "dance", "event_id": "e1"}))
        error = await expect_error(ws, "unknown_event_type")
        assert error["error"]["event_id"] == "e1"
        await ws.send(json.dumps({"no": "type"}))
        await expect_error(ws, "missing_required_parameter")
        await ws.send(json.dumps({"type": "start", "sample_rate": 123}))
        error = await expect_error(ws, "invalid_value")
        assert error["error"]["param"] == "sample_rate"
        await ws.send(json.dumps({"type": "start", "sample_rte": 16000}))
        await expect_error(ws, "invalid_value")
        await ws.send(json.dumps({"type": "stop"}))
        await expect_error(ws, "not_started")

        # The same connection still starts a meeting (24 kHz input, resampled) and finishes it.
        await ws.send(json.dumps({"type": "start", "sample_rate": 24_000, "event_id": "go"}))
        started = await recv_until(ws, "started")
        assert started["event_id"] == "go" and started["sample_rate"] == 24_000
        await ws.send(json.dumps({"type": "start"}))
        await expect_error(ws, "already_started")
        await ws.send(bytes(641))
        await expect_error(ws, "invalid_audio")
        await ws.send(silence(200) + speak("Hello there, this is a short meeting.") + silence(900))
        await ws.send(json.dumps({"type": "stop"}))
        stopped = await recv_until(ws, "stopped")
        assert stopped["meeting_id"] == started["meeting_id"]
        final = await recv_until(ws, "final", timeout=60)
        assert {"short", "meeting"} <= words(" ".join(s["text"] for s in final["transcript"]))
    async with httpx.AsyncClient(base_url=hark_server.base_url) as client:
        assert (await client.delete(f"/v1/meetings/{final['meeting_id']}")).status_code == 200
        assert (await client.get("/v1/meetings/not-a-meeting")).status_code == 404


async def test_a_meeting_stops_itself_at_its_maximum_length(hark_server: HarkProcess) -> None:
    async with websockets.connect(stream_url(hark_server)) as ws:
        await ws.send(json.dumps({"type": "start", "max_minutes": 0.05}))
        started = await recv_until(ws, "started")
        assert started["max_seconds"] == pytest.approx(3.0)
        pcm = speak("This meeting goes on and on, for longer than it is allowed to.", rate=RATE)
        for offset in range(0, len(pcm), 3200):
            await ws.send(pcm[offset : offset + 3200])
        notice = await recv_until(ws, "notice")
        assert notice["code"] == "max_length_reached"
        stopped = await recv_until(ws, "stopped")
        assert stopped["reason"] == "max_length" and 3.0 <= stopped["duration_s"] < 3.3
        final = await recv_until(ws, "final", timeout=60)
        assert final["duration_s"] < 3.3
    async with httpx.AsyncClient(base_url=hark_server.base_url) as client:
        assert (await client.delete(f"/v1/meetings/{final['meeting_id']}")).status_code == 200


async def test_the_meeting_page_is_served(hark_server: HarkProcess) -> None:
    async with httpx.AsyncClient(base_url=hark_server.base_url) as client:
        page = await client.get("/meeting")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "/static/meeting.js" in page.text and "/static/style.css" in page.text
        for asset in ("/static/meeting.js", "/static/meeting.css"):
            assert (await client.get(asset)).status_code == 200


async def test_an_invalid_encryption_key_refuses_to_record(tmp_path: Path) -> None:
    settings = Settings(
        meetings={"data_dir": tmp_path / "meetings", "encryption_keys": ["not-a-fernet-key"]}  # type: ignore[arg-type]
    )
    service = MeetingService(settings, engines=None, workflows=[])  # type: ignore[arg-type]
    await service.start()
    try:
        with pytest.raises(MeetingRefused) as refused:
            await service.begin(sample_rate=RATE)
        assert refused.value.code == "recording_refused"
        assert "not a valid Fernet key" in str(refused.value)
        assert "not-a-fernet-key" not in str(refused.value)
    finally:
        await service.aclose()
    assert not (tmp_path / "meetings").exists() or not any((tmp_path / "meetings").iterdir())


async def test_shutdown_finishes_a_meeting_that_was_being_processed(tmp_path: Path) -> None:
    """SIGTERM right after stop: the server finishes the job (a slow LLM) before it exits."""
    key = Fernet.generate_key().decode()
    slow = FakeChatLLM(reply=json.dumps(SUMMARY), first_token_delay=1.5)
    with ThreadedServer(slow.app()) as llm_server:
        env = {
            "HARK_LLM_BASE_URL": llm_server.base_url + "/v1",
            "HARK_MEETINGS_DATA_DIR": str(tmp_path / "meetings"),
            "HARK_MEETINGS_ENCRYPTION_KEYS": json.dumps([key]),
        }
        with HarkProcess(env=env, log_path=tmp_path / "server.log") as server:
            session = await stream(server, meeting_audio(SCRIPT[:1]), realtime=False, wait_final=False)
            meeting_id = session.of("stopped")[0]["meeting_id"]
            assert server.process is not None
            server.process.terminate()
            # uvicorn re-raises the signal once it has shut down cleanly.
            assert await asyncio.to_thread(server.process.wait, 60) in (0, -15)
            log = (tmp_path / "server.log").read_text()
            assert "Application shutdown complete" in log
    assert len(slow.requests) == 1
    from hark.meetings.storage import MeetingStore

    store = MeetingStore(tmp_path / "meetings", keys=[key], retention_days=1)
    result = store.load_result(meeting_id)
    assert result is not None and result["status"] == "completed"
    assert result["summary"] == SUMMARY["summary"]
    assert "morning" in words(result["transcript"][0]["text"])
    assert len(b"".join(store.read_audio(meeting_id))) > RATE


# -- the orchestrator on its own -------------------------------------------------------------


async def test_the_orchestrator_batches_transcriptions_and_finishes_jobs_on_close() -> None:
    from hark.meetings.orchestrator import Orchestrator, OrchestratorClosed

    orchestrator = Orchestrator(workers=1, batch_size=3)
    orchestrator.start()
    running: list[int] = []
    peak = 0

    async def job(n: int) -> int:
        nonlocal peak
        running.append(n)
        peak = max(peak, len(running))
        await asyncio.sleep(0.05)
        running.remove(n)
        if n == 4:
            raise ValueError("job 4 fails alone")
        return n * 10

    async def finalize() -> str:
        await asyncio.sleep(0.05)
        return "done"

    futures = [orchestrator.submit("transcribe", "m", lambda n=n: job(n)) for n in range(6)]
    final = orchestrator.submit("finalize", "m", finalize)
    more = orchestrator.submit("transcribe", "m", lambda: job(7))
    # 1. Close at once: nothing new is taken, everything queued or running still finishes.
    await orchestrator.aclose()
    with pytest.raises(OrchestratorClosed):
        orchestrator.submit("transcribe", "m", lambda: job(9))
    results = [f.result() if not f.exception() else "failed" for f in futures]
    assert results == [0, 10, 20, 30, "failed", 50]
    assert final.result() == "done" and more.result() == 70
    # One worker, but transcriptions ran up to batch_size at a time; the finalize job alone.
    assert peak == 3
    assert orchestrator.stats.largest_batch == 3
    assert orchestrator.stats.jobs == 8 and orchestrator.stats.failed == 1
