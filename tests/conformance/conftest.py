"""One hark and one stand-in LLM for every client of the conformance suite.

The stand-in follows one script for every client (tests/conformance/script.py): a question about
the weather makes it call the client's ``get_weather`` tool; a request for a story gets a long
answer to barge in on; anything else gets a short answer.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conformance import script
from tests.servers import FakeChatLLM, HarkProcess, ThreadedServer


@pytest.fixture(scope="package")
def stand_in() -> Iterator[tuple[FakeChatLLM, ThreadedServer]]:
    llm = FakeChatLLM()
    with ThreadedServer(llm.app()) as server:
        yield llm, server


@pytest.fixture(scope="package")
def hark(
    stand_in: tuple[FakeChatLLM, ThreadedServer], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[HarkProcess]:
    _, llm_server = stand_in
    log = tmp_path_factory.mktemp("hark-conformance") / "server.log"
    env = {
        "HARK_LLM_BASE_URL": llm_server.base_url + "/v1",
        "HARK_LLM_API_KEY": "sk-conformance",
        "HARK_LLM_MODEL": "stand-in",
    }
    with HarkProcess(env=env, log_path=log) as server:
        yield server


@pytest.fixture
def llm(stand_in: tuple[FakeChatLLM, ThreadedServer]) -> FakeChatLLM:
    """The stand-in, set to the script afresh for each test."""
    llm, _ = stand_in
    llm.reply = script.SHORT_ANSWER
    llm.replies = []
    llm.answers = {script.STORY_WORD: script.STORY}
    llm.tool_call = (script.TOOL_NAME, script.TOOL_ARGUMENTS)
    llm.tool_call_when = script.TOOL_WORD
    llm.tool_reply = script.TOOL_REPLY
    llm.token_delay = 0.0
    llm.first_token_delay = 0.0
    llm.requests.clear()
    return llm
