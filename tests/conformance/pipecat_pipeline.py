"""Pipecat's side of test_pipecat.py: OpenAIRealtimeLLMService in a pipeline without a transport.

Imported only inside that test (see its ``pipecat`` fixture): on Python < 3.12, importing pipecat
replaces ``asyncio.wait_for`` for the whole process.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

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

from tests.conformance import script

CHUNK = 24_000 * 2 * 20 // 1000  # 20 ms, as a transport would deliver it


@dataclass
class Outcome:
    calls: list[dict[str, Any]] = field(default_factory=list)
    """Each run of the registered tool, with its arguments."""
    errors: list[str] = field(default_factory=list)
    """Every ErrorFrame the service pushed (Pipecat's way of saying the session is broken)."""
    audio_frames: int = 0
    messages: list[dict[str, Any]] = field(default_factory=list)
    """Pipecat's own copy of the conversation (its LLMContext) at the end."""


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


async def until(what: str, check: Callable[[], bool], timeout: float = 40) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} within {timeout} s")
        await asyncio.sleep(0.05)


async def converse(url: str, responses_done: Callable[[], int]) -> Outcome:
    """Turn 1 typed (the context's question, which the model answers with a tool call), turn 2
    spoken. ``responses_done`` counts response.done events as they go over the wire."""
    outcome = Outcome()

    async def get_weather(params: FunctionCallParams) -> None:
        outcome.calls.append(dict(params.arguments))
        await params.result_callback(script.TOOL_RESULT)

    weather = FunctionSchema(
        name=script.TOOL_NAME,
        description=script.TOOL_DESCRIPTION,
        properties={"city": {"type": "string"}},
        required=["city"],
    )
    context = LLMContext([{"role": "user", "content": script.WEATHER_QUESTION}], tools=ToolsSchema([weather]))
    service = OpenAIRealtimeLLMService(
        api_key="none", base_url=url, settings=OpenAIRealtimeLLMService.Settings(model="hark")
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

    def audio() -> list[float]:
        return [t for t, f in downstream.frames if isinstance(f, TTSAudioRawFrame)]

    async def conversation() -> None:
        await asyncio.wait_for(started.wait(), 30)
        # Turn 1, typed (the context's question): the tool is called, its answer spoken.
        await worker.queue_frame(LLMRunFrame())
        await until("the tool's answer", lambda: responses_done() >= 2)
        # Turn 2, spoken, paced like a transport's 20 ms frames; hark's VAD ends the turn.
        audio_before = len(audio())
        pcm = script.spoken(script.THANKS)
        began = time.monotonic()
        for index, offset in enumerate(range(0, len(pcm), CHUNK)):
            chunk = pcm[offset : offset + CHUNK]
            await worker.queue_frame(InputAudioRawFrame(audio=chunk, sample_rate=24_000, num_channels=1))
            await asyncio.sleep(max(0.0, began + (index + 1) * 0.02 - time.monotonic()))
        await until("the spoken turn's answer", lambda: responses_done() >= 3)
        await until("its audio", lambda: len(audio()) > audio_before)
        await asyncio.sleep(0.5)
        await worker.queue_frame(EndFrame())

    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    run = asyncio.create_task(runner.run())
    try:
        await conversation()
        await asyncio.wait_for(run, 20)
    finally:
        if not run.done():
            await worker.cancel()
            await asyncio.gather(run, return_exceptions=True)
        outcome.errors = [str(f.error) for _, f in upstream.frames if isinstance(f, ErrorFrame)]
        outcome.audio_frames = len(audio())
        outcome.messages = [dict(m) for m in context.get_messages() if isinstance(m, dict)]
    return outcome
