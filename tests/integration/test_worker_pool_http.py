"""Worker processes behind the HTTP API: a killed worker, and a full queue answered with 503."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.test_openai_http import wav_bytes
from tests.servers import HarkProcess
from tests.speech import speak

pytestmark = pytest.mark.slow


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found += [int(p) for p in text]
    return found


def worker_pids(server: HarkProcess) -> list[int]:
    """The worker processes: children of hark that are Python (not the resource tracker)."""
    assert server.process is not None
    pids = []
    for pid in children(server.process.pid):
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        if any(b"spawn_main" in part for part in cmdline):
            pids.append(pid)
    return pids


async def transcribe(http: httpx.AsyncClient, audio: bytes) -> httpx.Response:
    return await http.post("/v1/audio/transcriptions", files={"file": ("a.wav", audio)}, data={"model": "w"})


async def test_a_killed_worker_fails_fast_and_is_replaced(tmp_path: Path) -> None:
    env = {"HARK_WORKERS_PROCESSES": "2", "HARK_FALLBACK_ATTEMPTS": "1"}
    audio = wav_bytes(b"".join(speak("Please call my mother tomorrow morning.") for _ in range(5)))
    with HarkProcess(env=env, log_path=tmp_path / "log.txt") as server:
        before = worker_pids(server)
        assert len(before) == 2
        async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as http:
            request = asyncio.create_task(transcribe(http, audio))
            await asyncio.sleep(0.6)  # the transcription is running in one of the workers
            killed_at = time.monotonic()
            for pid in before:
                os.kill(pid, signal.SIGKILL)
            response = await request
            took = time.monotonic() - killed_at
            print(f"\nSIGKILL → answer in {took * 1000:.0f} ms (HTTP {response.status_code})")
            assert took < 3.0
            assert response.status_code == 503
            assert "worker process died" in response.json()["error"]["message"]
            deadline = time.monotonic() + 60
            while (
                time.monotonic() < deadline
                and (await http.get("/ready")).json()["checks"].get("workers") is not True
            ):
                await asyncio.sleep(0.2)
            while time.monotonic() < deadline and len(worker_pids(server)) < 2:
                await asyncio.sleep(0.2)
            after = worker_pids(server)
            assert len(after) == 2 and not set(after) & set(before)
            ok = await transcribe(http, audio)
            assert ok.status_code == 200 and "mother" in ok.json()["text"].lower()


async def test_a_full_queue_answers_503_with_retry_after_and_loses_nothing(tmp_path: Path) -> None:
    env = {"HARK_WORKERS_PROCESSES": "1", "HARK_WORKERS_QUEUE_LIMIT": "2", "HARK_FALLBACK_ATTEMPTS": "1"}
    audio = wav_bytes(speak("Please call my mother tomorrow morning."))
    with HarkProcess(env=env, log_path=tmp_path / "log.txt") as server:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=120) as http:
            responses = await asyncio.gather(*(transcribe(http, audio) for _ in range(10)))
    busy = [r for r in responses if r.status_code == 503]
    served = [r for r in responses if r.status_code == 200]
    print(f"\nqueue limit 2, 10 requests at once: {len(served)} served, {len(busy)} refused")
    assert busy and served and len(busy) + len(served) == 10
    for response in busy:
        assert int(response.headers["Retry-After"]) >= 1
        assert response.json()["error"]["type"] == "server_error"
    for response in served:
        assert "mother" in response.json()["text"].lower()
