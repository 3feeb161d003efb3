from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import hark.config.loading
from tests.servers import FakeChatLLM, HarkProcess, ThreadedServer, free_port


@pytest.fixture(scope="session")
def web_app_origin() -> str:
    """The origin the Next.js example is started on (tests/browser/test_nextjs_example.py): the
    shared hark lets it in, so that test needs no hark of its own."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture(scope="session")
def hark_server(web_app_origin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HarkProcess]:
    """hark with the real local models and no LLM configured (echo mode)."""
    log = tmp_path_factory.mktemp("hark-echo") / "server.log"
    # No duration noise, so the same text always lasts as long (the speech tests compare formats).
    server = HarkProcess(env={"HARK_TTS_PIPER_NOISE_W_SCALE": "0"}, log_path=log)
    # Its own pages, and the example app on another origin (an allow-list replaces "same host").
    server.env["HARK_SECURITY_ALLOWED_ORIGINS"] = json.dumps([server.base_url, web_app_origin])
    with server:
        yield server


@pytest.fixture(scope="session")
def fake_llm() -> Iterator[tuple[FakeChatLLM, ThreadedServer]]:
    llm = FakeChatLLM()
    with ThreadedServer(llm.app()) as server:
        yield llm, server


@pytest.fixture(scope="session")
def hark_with_llm(
    fake_llm: tuple[FakeChatLLM, ThreadedServer], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[HarkProcess]:
    """hark answering through the loopback OpenAI-compatible stand-in."""
    _, llm_server = fake_llm
    log = tmp_path_factory.mktemp("hark-llm") / "server.log"
    env = {
        "HARK_LLM_BASE_URL": llm_server.base_url + "/v1",
        "HARK_LLM_API_KEY": "sk-test-secret-123",
        "HARK_LLM_MODEL": "stand-in",
        "HARK_LLM_TIMEOUT": "5",
    }
    with HarkProcess(env=env, log_path=log) as server:
        yield server


@pytest.fixture
def config_isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No real /etc/hark/config.yaml and no HARK_* variables from the surrounding environment
    (the config tests' settings are only what each test sets)."""
    monkeypatch.setattr(hark.config.loading, "SYSTEM_CONFIG", tmp_path / "etc-absent" / "config.yaml")
    for name in list(os.environ):
        if name.upper().startswith("HARK_"):
            monkeypatch.delenv(name)
