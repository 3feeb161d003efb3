"""One hark and one stand-in LLM for every client of the conformance suite.

The stand-in follows one script for every client (tests/conformance/script.py): a question about
the weather makes it call the client's ``get_weather`` tool; a request for a story gets a long
answer to barge in on; anything else gets a short answer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from tests.conformance import script
from tests.servers import FakeChatLLM, HarkProcess, ThreadedServer


@pytest.fixture
def hark(hark_with_llm: HarkProcess) -> HarkProcess:
    """The suite's hark answering through the stand-in (tests/conftest.py), shared with the
    voice-loop tests: one process fewer to start."""
    return hark_with_llm


@pytest.fixture
def llm(fake_llm: tuple[FakeChatLLM, ThreadedServer]) -> Iterator[FakeChatLLM]:
    """The shared stand-in, set to the script for one test and put back to its defaults after."""
    llm, _ = fake_llm
    script_knobs = {
        "reply": script.SHORT_ANSWER,
        "answers": {script.STORY_WORD: script.STORY},
        "tool_call": (script.TOOL_NAME, script.TOOL_ARGUMENTS),
        "tool_call_when": script.TOOL_WORD,
        "tool_reply": script.TOOL_REPLY,
    }
    defaults = FakeChatLLM()
    knobs = [f.name for f in dataclasses.fields(FakeChatLLM) if f.name not in ("requests", "tool_calls_made")]
    for name in knobs:
        setattr(llm, name, script_knobs.get(name, getattr(defaults, name)))
    yield llm
    for name in knobs:
        setattr(llm, name, getattr(defaults, name))
