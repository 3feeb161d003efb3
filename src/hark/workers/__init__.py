"""CPU-heavy engines (STT, TTS, speaker embeddings) in a supervised pool of worker processes.

pool = WorkerPool([("stt", stt_provider), ("tts", tts_provider)], settings,
                  processes=default_processes(), queue_limit=16, request_timeout_s=30,
                  factory=registry.build)  # builds an engine in the child
await pool.start()                   # every worker built and warmed its engines
stt, tts = pooled_engines(pool)      # STT / TTS protocol proxies; the parent holds no model
...
await pool.aclose()
"""

from hark.workers.pool import PoolBusy, WorkerPool
from hark.workers.process import available_cores, default_processes
from hark.workers.proto import EngineInfo
from hark.workers.proxy import PooledSpeaker, PooledSTT, PooledTTS, pooled_engine, pooled_engines

POOLED_KINDS = frozenset({("stt", "faster-whisper"), ("tts", "piper"), ("speaker", "campplus")})
"""Provider kinds worth a worker process: local, CPU-heavy models. Remote kinds stay in-process
(they wait on the network, and warming them would cost a paid request)."""

__all__ = [
    "POOLED_KINDS",
    "EngineInfo",
    "PoolBusy",
    "PooledSTT",
    "PooledSpeaker",
    "PooledTTS",
    "WorkerPool",
    "available_cores",
    "default_processes",
    "pooled_engine",
    "pooled_engines",
]
