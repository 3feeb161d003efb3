"""/metrics and the logs of a real hark process after a real voice turn (RELIABILITY #7).

hark runs with an LLM key, an admin key, a token secret, a Slack URL and a Fernet key in its
configuration, JSON logs on, and answers one spoken question through the loopback LLM. Then
neither /metrics nor the log holds any of those secrets or any word of the conversation, the
stage histograms counted the turn, and the series count does not grow with more sessions.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets
from cryptography.fernet import Fernet
from prometheus_client.parser import text_string_to_metric_families

from tests.realtime_client import realtime, send_audio
from tests.servers import FakeChatLLM, HarkProcess, ThreadedServer
from tests.speech import silence, speak

pytestmark = pytest.mark.slow

QUESTION = "What is the weather like in Paris today?"
REPLY = "Paris is sunny and mild today. You will not need an umbrella."
CONTENT_WORDS = ("weather", "Paris", "paris", "sunny", "umbrella")
LLM_KEY = "sk-live-metrics-" + "Q7x" * 8
ADMIN_KEY = "admin-key-" + "Z9y" * 8
TOKEN_SECRET = "token-secret-" + "K3w" * 8
SLACK_URL = "https://hooks.slack.com/services/T0METRICS/B0METRICS/slackTokenMustNotLeak42"
FERNET_KEY = Fernet.generate_key().decode()
SESSION_TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJtZXRyaWNzIn0.c2Vzc2lvblRva2VuTXVzdE5vdExlYWs"
SECRETS = (LLM_KEY, ADMIN_KEY, TOKEN_SECRET, "slackTokenMustNotLeak42", FERNET_KEY, SESSION_TOKEN)

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture(scope="module")
def observed(
    fake_llm: tuple[FakeChatLLM, ThreadedServer], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[HarkProcess, Path]]:
    _, llm_server = fake_llm
    tmp = tmp_path_factory.mktemp("hark-metrics")
    log_path = tmp / "server.log"
    env = {
        "HARK_LLM_BASE_URL": llm_server.base_url + "/v1",
        "HARK_LLM_API_KEY": LLM_KEY,
        "HARK_LLM_MODEL": "stand-in",
        "HARK_LLM_TIMEOUT": "5",
        "HARK_SERVER_ADMIN_KEY": ADMIN_KEY,
        "HARK_SECURITY_TOKEN_SECRET": TOKEN_SECRET,
        "HARK_MEETINGS_DATA_DIR": str(tmp / "meetings"),
        "HARK_MEETINGS_ENCRYPTION_KEYS": json.dumps([FERNET_KEY]),
        "HARK_MEETINGS_WORKFLOWS": json.dumps([{"kind": "slack", "url": SLACK_URL}]),
        "HARK_OBSERVABILITY_LOG_FORMAT": "json",
    }
    with HarkProcess(env=env, log_path=log_path) as server:
        yield server, log_path


def scrape(server: HarkProcess) -> tuple[str, Samples]:
    response = httpx.get(server.base_url + "/metrics", timeout=5)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    found = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }
    return response.text, found


def series(text: str) -> int:
    return sum(1 for line in text.splitlines() if line and not line.startswith("#"))


async def wait_for_sessions_closed(server: HarkProcess) -> Samples:
    for _ in range(50):
        _, found = scrape(server)
        if found.get(("hark_sessions_active", (("transport", "realtime"),))) == 0:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError("the session never closed in /metrics")


async def test_a_voice_turn_shows_in_metrics_without_content_or_secrets(
    observed: tuple[HarkProcess, Path], fake_llm: tuple[FakeChatLLM, ThreadedServer]
) -> None:
    server, log_path = observed
    llm, _ = fake_llm
    llm.reply = REPLY
    _, before = scrape(server)
    assert before[("hark_engines_loaded", ())] == 1
    assert before[("hark_voice_to_voice_seconds_count", ())] == 0
    # A browser passes its session token in the WebSocket URL; the server's own access lines
    # (uvicorn's) must not keep it, whether hark accepts or refuses it.
    with contextlib.suppress(OSError, websockets.exceptions.WebSocketException):
        async with websockets.connect(f"{server.ws_url}&token={SESSION_TOKEN}", open_timeout=5):
            pass
    async with realtime(server.base_url) as (conn, rec):
        await send_audio(conn, silence(300) + speak(QUESTION) + silence(1200))
        final = await rec.wait_for("conversation.item.input_audio_transcription.completed", timeout=40)
        assert "paris" in final.transcript.lower()
        done = await rec.wait_for("response.done", timeout=40)
        assert done.response.status == "completed"
        session_id = (await rec.wait_for("session.created")).session.id
        _, during = scrape(server)
        assert during[("hark_sessions_active", (("transport", "realtime"),))] == 1
    found = await wait_for_sessions_closed(server)
    text, _ = scrape(server)

    assert found[("hark_voice_to_voice_seconds_count", ())] == 1
    assert "hark_voice_to_voice_seconds_count 1" in text
    for name in ("stt", "llm_ttft", "tts_ttfb", "end_of_turn"):
        assert found[(f"hark_{name}_seconds_count", ())] == 1, name
    assert 0 < found[("hark_voice_to_voice_seconds_sum", ())] < 10
    assert found[("hark_turns_total", (("status", "completed"),))] == 1
    # The voice session (and the token probe, if hark accepted it).
    assert 1 <= found[("hark_sessions_opened_total", (("transport", "realtime"),))] <= 2
    assert found[("hark_sessions_closed_total", (("reason", "client"), ("transport", "realtime")))] >= 1
    # One series per configured provider, read from the chains at scrape time.
    assert found[("hark_provider_attempts_total", (("provider", "openai"), ("stage", "llm")))] >= 1
    assert found[("hark_provider_successes_total", (("provider", "openai"), ("stage", "llm")))] >= 1
    assert found[("hark_provider_circuit_open", (("provider", "openai"), ("stage", "llm")))] == 0
    assert found[("hark_provider_successes_total", (("provider", "faster-whisper"), ("stage", "stt")))] >= 1
    assert found[("hark_provider_successes_total", (("provider", "piper"), ("stage", "tts")))] >= 1
    assert ("hark_worker_queue_depth", ()) in found and found[("hark_workers", ())] >= 1

    for word in CONTENT_WORDS:
        assert word not in text, word
    assert session_id not in text
    for secret in SECRETS:
        assert secret not in text

    log = log_path.read_text(encoding="utf-8")
    for secret in SECRETS:
        assert secret not in log
    for word in CONTENT_WORDS:
        assert word not in log, word
    records = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert records, "no JSON log lines"
    assert all({"ts", "level", "logger", "message"} <= set(r) for r in records)
    assert any(r["message"] == "turn latency" and r.get("session") == session_id for r in records)


async def test_series_count_is_flat_across_sessions(observed: tuple[HarkProcess, Path]) -> None:
    server, _ = observed
    first, _ = scrape(server)
    for _ in range(5):
        async with realtime(server.base_url) as (conn, rec):
            await conn.send({"type": "no.such.event"})
            await rec.wait_for("error")
    await wait_for_sessions_closed(server)
    text, found = scrape(server)
    assert series(text) == series(first)
    assert found[("hark_errors_total", (("code", "unknown_event_type"),))] >= 5
    assert not re.search(r"sess_[A-Za-z0-9]", text)
