"""Pipecat's OpenAIRealtimeLLMService (pipecat-ai, pinned in pyproject's `conformance` extra) in a
pipeline without a transport: a typed question that calls a registered tool, then a spoken turn.

Pipecat treats almost any `error` event as fatal, and ignores a few at debug level, so the wire
between it and hark is read too (tests/conformance/tap.py)."""

from __future__ import annotations

import asyncio
import json
import time
import warnings
from typing import Any

import pytest

from tests.conformance import script
from tests.conformance.tap import tapped
from tests.servers import FakeChatLLM, HarkProcess

pytestmark = pytest.mark.slow

pytest.importorskip("pipecat", reason="pip install -e '.[conformance]' (make test does)")
with warnings.catch_warnings():
    # pipecat.audio.utils imports audioop, deprecated in Python 3.11 (pipecat's own choice).
    warnings.simplefilter("ignore", DeprecationWarning)
    from pipecat.adapters.llm.schemas.function_schema import FunctionSchema
    from pipecat.adapters.llm.schemas.tools_schema import ToolsSchema
    from pipecat.frames.frames import (
        EndFrame,
        ErrorFrame,
        Frame,
        InputAudioRawFrame,
        LLMRunFrame,
        TTSAudioRawFrame,
    )
    from pipecat.pipeline.pipeline import Pipeline
    from pipecat.pipeline.worker import PipelineParams, PipelineWorker
    from pipecat.processors.aggregators.llm_context import LLMContext
    from pipecat.processors.aggregators.llm_response_universal import LLMContextAggregatorPair
    from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
    from pipecat.services.llm_service import FunctionCallParams
    from pipecat.services.openai.realtime.llm import OpenAIRealtimeLLMService
    from pipecat.workers.runner import WorkerRunner

CHUNK = 24_000 * 2 * 20 // 1000  # 20 ms, as a transport would deliver it


class Recorder(FrameProcessor):  # type: ignore[misc]
    """Passes frames on and keeps those going one way (errors go upstream, audio downstream)."""

    def __init__(self, keep: FrameDirection) -> None:
        super().__init__()
        self.keep = keep
        self.frames: list[tuple[float, Frame]] = []

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if direction == self.keep:
            self.frames.append((time.monotonic(), frame))
        await self.push_frame(frame, direction)


async def until(what: str, check: Any, timeout: float = 40) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} within {timeout} s")
        await asyncio.sleep(0.05)


async def test_a_conversation_with_a_tool_and_no_fatal_error(hark: HarkProcess, llm: FakeChatLLM) -> None:
    calls: list[dict[str, Any]] = []

    async def get_weather(params: FunctionCallParams) -> None:
        calls.append(dict(params.arguments))
        await params.result_callback(script.TOOL_RESULT)

    weather = FunctionSchema(
        name=script.TOOL_NAME,
        description=script.TOOL_DESCRIPTION,
        properties={"city": {"type": "string"}},
        required=["city"],
    )
    context = LLMContext([{"role": "user", "content": script.WEATHER_QUESTION}], tools=ToolsSchema([weather]))

    async with tapped(hark.ws_url) as wire:
        service = OpenAIRealtimeLLMService(
            api_key="none",
            base_url=wire.base + "/v1/realtime",
            settings=OpenAIRealtimeLLMService.Settings(model="hark"),
        )
        service.register_function(script.TOOL_NAME, get_weather)
        aggregators = LLMContextAggregatorPair(context)
        upstream, downstream = Recorder(FrameDirection.UPSTREAM), Recorder(FrameDirection.DOWNSTREAM)
        pipeline = Pipeline([upstream, aggregators.user(), service, downstream, aggregators.assistant()])
        worker = PipelineWorker(
            pipeline,
            params=PipelineParams(audio_in_sample_rate=24_000, audio_out_sample_rate=24_000),
            enable_rtvi=False,
            idle_timeout_secs=None,
        )
        started = asyncio.Event()

        @worker.event_handler("on_pipeline_started")  # type: ignore[untyped-decorator, misc]
        async def on_started(_worker: Any, _frame: Any) -> None:
            started.set()

        def audio_frames() -> list[float]:
            return [t for t, f in downstream.frames if isinstance(f, TTSAudioRawFrame)]

        def responses_done() -> list[dict[str, Any]]:
            return [e["response"] for e in wire.of("response.done")]

        async def conversation() -> dict[str, float]:
            await asyncio.wait_for(started.wait(), 30)
            # Turn 1, typed (the context's question): the tool is called, its answer spoken.
            await worker.queue_frame(LLMRunFrame())
            await until("the tool's answer", lambda: len(responses_done()) >= 2)
            # Turn 2, spoken, paced like a transport's 20 ms frames; hark's VAD ends the turn.
            audio_before = len(audio_frames())
            pcm = script.spoken(script.THANKS)
            began = time.monotonic()
            for index, offset in enumerate(range(0, len(pcm), CHUNK)):
                frame = InputAudioRawFrame(
                    audio=pcm[offset : offset + CHUNK], sample_rate=24_000, num_channels=1
                )
                await worker.queue_frame(frame)
                await asyncio.sleep(max(0.0, began + (index + 1) * 0.02 - time.monotonic()))
            sent = time.monotonic()
            await until("the spoken turn's answer", lambda: len(responses_done()) >= 3)
            await until("its audio", lambda: len(audio_frames()) > audio_before)
            first_audio = audio_frames()[audio_before]
            await asyncio.sleep(0.5)
            await worker.queue_frame(EndFrame())
            return {"answer_audio_after_last_chunk_ms": round((first_audio - sent) * 1000)}

        runner = WorkerRunner(handle_sigint=False)
        await runner.add_workers(worker)
        run = asyncio.create_task(runner.run())
        try:
            timings = await conversation()
            await asyncio.wait_for(run, 20)
        finally:
            if not run.done():
                await worker.cancel()
                await asyncio.gather(run, return_exceptions=True)

    # No error reached the pipeline, and none went over the wire (not even one Pipecat ignores).
    errors = [f for _, f in upstream.frames if isinstance(f, ErrorFrame)]
    assert errors == [], [e.error for e in errors]
    assert wire.of("error") == []
    assert wire.connections == 1

    # The registered tool ran once, with the model's arguments; its result was answered aloud.
    assert calls == [json.loads(script.TOOL_ARGUMENTS)]
    outputs = [e["item"] for e in wire.from_client if e.get("type") == "conversation.item.create"]
    outputs = [i for i in outputs if i.get("type") == "function_call_output"]
    assert [o["output"] for o in outputs] == [json.dumps(script.TOOL_RESULT)]  # Pipecat sends JSON
    call, answer, spoken = responses_done()
    assert [i["type"] for i in call["output"]] == ["function_call"]
    assert [o["call_id"] for o in outputs] == [call["output"][0]["call_id"]]
    heard_answer = [p.get("transcript") for i in answer["output"] for p in i.get("content") or []]
    assert heard_answer == [script.TOOL_REPLY.format(result=json.dumps(script.TOOL_RESULT))]
    assert [r["status"] for r in (call, answer, spoken)] == ["completed"] * 3
    assert len(audio_frames()) > 0

    # The spoken turn was heard and answered.
    heard = [
        e["transcript"].lower() for e in wire.of("conversation.item.input_audio_transcription.completed")
    ]
    assert len(heard) == 1 and "thank" in heard[0]
    spoken_text = [p.get("transcript") for i in spoken["output"] for p in i.get("content") or []]
    assert spoken_text == [script.SHORT_ANSWER]

    # The server's history holds the turns in the order they happened.
    order = script.server_order(wire.from_server)
    assert [i["id"] for i in order] == script.arrival_order(wire.from_server)
    assert [(i["type"], i.get("role")) for i in order] == [
        ("message", "user"),
        ("function_call", None),
        ("function_call_output", None),
        ("message", "assistant"),
        ("message", "user"),
        ("message", "assistant"),
    ]
    script.figures("pipecat", turns=2, server_events=len(wire.from_server), **timings)
