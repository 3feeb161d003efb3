"""The comparison: the same fixed-delay fakes in a Pipecat pipeline behind a raw-PCM WebSocket.

Run as ``python -m hark.bench.pipecat_side --port N [--stt-final-ms 150]`` (the bench does).
Needs ``pipecat-ai[websocket]`` (the ``bench`` extra). One FastAPI app; each WebSocket at
``/ws`` gets its own pipeline, the standard Pipecat server layout::

    transport.input() → VADProcessor(Silero) → ScriptedSTT (SegmentedSTTService)
      → user context aggregator → ScriptedLLM (LLMService) → ScriptedTTS (TTSService)
      → transport.output() → assistant context aggregator

Wire: binary frames of PCM16 mono 24 kHz both ways (the serializer resamples the input to the
pipeline's 16 kHz with Pipecat's own stream resampler); one JSON text message per turn,
``{"type": "vad_stop", "chunk": c, "frame": i}``, names the 32 ms VAD chunk on which the turn
ended (the figure hark's ``speech_stopped`` lets the client work out) and the input frame after
which the resampler had put all of it out.
Turn taking is set to match hark's: Silero at threshold 0.5, 96 ms to start, 300 ms of silence
to stop, no volume gate, and the turn ends as soon as the VAD stopped and the final transcript
is in (``SpeechTimeoutUserTurnStopStrategy(user_speech_timeout=0)``).
"""

import argparse
import json
import sys
import time
from collections.abc import AsyncGenerator
from typing import Any

from hark.bench.fakes import DEFAULT_REPLY, DEFAULT_TRANSCRIPT, sleep_until, tokens, tone


def build_app(args: argparse.Namespace) -> Any:
    from fastapi import FastAPI, WebSocket
    from fastapi.responses import JSONResponse
    from loguru import logger  # type: ignore[import-not-found, unused-ignore]
    from pipecat.audio.utils import create_stream_resampler  # type: ignore[import-not-found, unused-ignore]
    from pipecat.audio.vad.silero import SileroVADAnalyzer  # type: ignore[import-not-found, unused-ignore]
    from pipecat.audio.vad.vad_analyzer import VADParams, VADState  # type: ignore[import-not-found, unused-ignore]
    from pipecat.frames.frames import (  # type: ignore[import-not-found, unused-ignore]
        Frame,
        InputAudioRawFrame,
        LLMContextFrame,
        LLMFullResponseEndFrame,
        LLMFullResponseStartFrame,
        OutputAudioRawFrame,
        OutputTransportMessageFrame,
        OutputTransportMessageUrgentFrame,
        TranscriptionFrame,
        TTSAudioRawFrame,
        VADUserStoppedSpeakingFrame,
    )
    from pipecat.pipeline.pipeline import Pipeline  # type: ignore[import-not-found, unused-ignore]
    from pipecat.pipeline.worker import PipelineParams, PipelineWorker  # type: ignore[import-not-found, unused-ignore]
    from pipecat.processors.aggregators.llm_context import LLMContext  # type: ignore[import-not-found, unused-ignore]
    from pipecat.processors.aggregators.llm_response_universal import (  # type: ignore[import-not-found, unused-ignore]
        LLMContextAggregatorPair,
        LLMUserAggregatorParams,
    )
    from pipecat.processors.audio.vad_processor import VADProcessor  # type: ignore[import-not-found, unused-ignore]
    from pipecat.processors.frame_processor import FrameDirection, FrameProcessor  # type: ignore[import-not-found, unused-ignore]
    from pipecat.serializers.base_serializer import FrameSerializer  # type: ignore[import-not-found, unused-ignore]
    from pipecat.services.llm_service import LLMService  # type: ignore[import-not-found, unused-ignore]
    from pipecat.services.stt_service import SegmentedSTTService  # type: ignore[import-not-found, unused-ignore]
    from pipecat.services.tts_service import TTSService  # type: ignore[import-not-found, unused-ignore]
    from pipecat.transports.websocket.fastapi import FastAPIWebsocketParams, FastAPIWebsocketTransport  # type: ignore[import-not-found, unused-ignore]
    from pipecat.turns.user_start import VADUserTurnStartStrategy  # type: ignore[import-not-found, unused-ignore]
    from pipecat.turns.user_stop import SpeechTimeoutUserTurnStopStrategy  # type: ignore[import-not-found, unused-ignore]
    from pipecat.turns.user_turn_strategies import UserTurnStrategies  # type: ignore[import-not-found, unused-ignore]
    from pipecat.utils.time import time_now_iso8601  # type: ignore[import-not-found, unused-ignore]
    from pipecat.workers.runner import WorkerRunner  # type: ignore[import-not-found, unused-ignore]

    logger.remove()
    logger.add(sys.stderr, level="WARNING")

    class RawPCMSerializer(FrameSerializer):  # type: ignore[misc, unused-ignore]
        """Binary PCM16 24 kHz in and out; remembers how many 16 kHz samples each input frame
        completed, so the VAD's decision can be named as an input frame."""

        def __init__(self) -> None:
            super().__init__()
            self._resampler = create_stream_resampler()
            self.cumulative: list[int] = []
            self._total = 0

        async def serialize(self, frame: Frame) -> str | bytes | None:
            if isinstance(frame, OutputAudioRawFrame):
                return bytes(frame.audio)
            if isinstance(frame, OutputTransportMessageFrame | OutputTransportMessageUrgentFrame):
                return json.dumps(frame.message)
            return None

        async def deserialize(self, data: str | bytes) -> Frame | None:
            if not isinstance(data, bytes):
                return None
            audio = await self._resampler.resample(data, 24_000, 16_000)
            self._total += len(audio) // 2
            self.cumulative.append(self._total)
            return InputAudioRawFrame(audio=audio, sample_rate=16_000, num_channels=1)

    class CountingSilero(SileroVADAnalyzer):  # type: ignore[misc, unused-ignore]
        """Silero as Pipecat runs it, counting 512-sample chunks to tell where it stopped."""

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.chunks = 0
            self.stop_chunk = -1

        def voice_confidence(self, buffer: bytes) -> Any:
            self.chunks += 1
            return super().voice_confidence(buffer)

        def _run_analyzer(self, buffer: bytes) -> VADState:
            before = self._vad_state
            state: VADState = super()._run_analyzer(buffer)
            if before in (VADState.SPEAKING, VADState.STOPPING) and state == VADState.QUIET:
                self.stop_chunk = self.chunks - 1
            return state

    class StopMarker(FrameProcessor):  # type: ignore[misc, unused-ignore]
        """Tells the client which of its frames ended the turn (one message per turn)."""

        def __init__(self, vad: CountingSilero, serializer: RawPCMSerializer) -> None:
            super().__init__()
            self._vad = vad
            self._serializer = serializer

        async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
            await super().process_frame(frame, direction)
            if isinstance(frame, VADUserStoppedSpeakingFrame) and direction == FrameDirection.DOWNSTREAM:
                need = (self._vad.stop_chunk + 1) * 512
                cumulative = self._serializer.cumulative
                index = next((i for i, n in enumerate(cumulative) if n >= need), len(cumulative) - 1)
                message = {"type": "vad_stop", "chunk": self._vad.stop_chunk, "frame": index}
                await self.push_frame(OutputTransportMessageUrgentFrame(message=message))
            await self.push_frame(frame, direction)

    class ScriptedSTT(SegmentedSTTService):  # type: ignore[misc, unused-ignore]
        async def run_stt(self, audio: bytes) -> AsyncGenerator[Frame | None, None]:
            started = time.monotonic()
            await sleep_until(started + args.stt_final_ms / 1000.0, precise=args.precise)
            yield TranscriptionFrame(DEFAULT_TRANSCRIPT, "", time_now_iso8601(), finalized=True)

    class ScriptedLLM(LLMService):  # type: ignore[misc, type-arg, unused-ignore]
        async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
            await super().process_frame(frame, direction)
            if not isinstance(frame, LLMContextFrame):
                await self.push_frame(frame, direction)
                return
            started = time.monotonic()
            await self.push_frame(LLMFullResponseStartFrame())
            try:
                for index, token in enumerate(tokens(args.reply)):
                    await sleep_until(
                        started + (args.llm_first_token_ms + index * args.llm_token_ms) / 1000.0,
                        precise=args.precise,
                    )
                    await self._push_llm_text(token)
            finally:
                await self.push_frame(LLMFullResponseEndFrame())

    class ScriptedTTS(TTSService):  # type: ignore[misc, unused-ignore]
        def __init__(self, **kwargs: Any) -> None:
            from pipecat.services.settings import TTSSettings  # type: ignore[import-not-found, unused-ignore]

            super().__init__(
                sample_rate=24_000,
                push_start_frame=True,
                push_stop_frames=True,
                settings=TTSSettings(model=None, voice=None, language=None),
                **kwargs,
            )

        def can_generate_metrics(self) -> bool:
            return False

        async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame | None, None]:
            started = time.monotonic()
            pcm = tone(max(20.0, len(text) * args.tts_ms_per_char), 24_000)
            await sleep_until(started + args.tts_first_audio_ms / 1000.0, precise=args.precise)
            yield TTSAudioRawFrame(audio=pcm, sample_rate=24_000, num_channels=1, context_id=context_id)

    app = FastAPI()

    @app.get("/health")
    async def health() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @app.websocket("/ws")
    async def session(websocket: WebSocket) -> None:
        await websocket.accept()
        serializer = RawPCMSerializer()
        transport = FastAPIWebsocketTransport(
            websocket=websocket,
            params=FastAPIWebsocketParams(
                audio_in_enabled=True,
                audio_out_enabled=True,
                add_wav_header=False,
                serializer=serializer,
                audio_in_sample_rate=16_000,
                audio_out_sample_rate=24_000,
                allowed_origins=[],
            ),
        )
        vad = CountingSilero(
            sample_rate=16_000,
            params=VADParams(
                confidence=0.5, start_secs=0.096, stop_secs=args.end_silence_ms / 1000.0, min_volume=0.0
            ),
        )
        context = LLMContext([{"role": "system", "content": "You are a helpful voice assistant."}])
        user, assistant = LLMContextAggregatorPair(
            context,
            user_params=LLMUserAggregatorParams(
                user_turn_strategies=UserTurnStrategies(
                    start=[VADUserTurnStartStrategy()],
                    stop=[SpeechTimeoutUserTurnStopStrategy(user_speech_timeout=0.0)],
                ),
            ),
        )
        pipeline = Pipeline(
            [
                transport.input(),
                VADProcessor(vad_analyzer=vad),
                StopMarker(vad, serializer),
                ScriptedSTT(sample_rate=16_000),
                user,
                ScriptedLLM(),
                ScriptedTTS(),
                transport.output(),
                assistant,
            ]
        )
        worker = PipelineWorker(
            pipeline,
            params=PipelineParams(audio_in_sample_rate=16_000, audio_out_sample_rate=24_000),
            enable_rtvi=False,
            idle_timeout_secs=None,
        )

        @transport.event_handler("on_client_disconnected")  # type: ignore[untyped-decorator, misc, unused-ignore]
        async def on_client_disconnected(transport: Any, client: Any) -> None:
            await worker.cancel()

        runner = WorkerRunner(handle_sigint=False)
        await runner.run(worker)

    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hark.bench.pipecat_side")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--stt-final-ms", type=float, default=0.0)
    parser.add_argument("--llm-first-token-ms", type=float, default=200.0)
    parser.add_argument("--llm-token-ms", type=float, default=20.0)
    parser.add_argument("--tts-first-audio-ms", type=float, default=100.0)
    parser.add_argument("--tts-ms-per-char", type=float, default=10.0)
    parser.add_argument("--end-silence-ms", type=float, default=300.0)
    parser.add_argument("--reply", default=DEFAULT_REPLY)
    parser.add_argument("--precise", action="store_true", help="fakes end their waits on the deadline")
    args = parser.parse_args(argv)
    import uvicorn

    uvicorn.run(build_app(args), host=args.host, port=args.port, log_level="warning", access_log=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
