"""A real ``hark serve`` process for the bench, and what it costs in CPU and memory."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from hark.bench.fakes import PLUGIN_ENV


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scripted_env(
    *,
    stt_final_ms: float = 0.0,
    llm_first_token_ms: float = 200.0,
    llm_token_ms: float = 20.0,
    tts_first_audio_ms: float = 100.0,
    tts_ms_per_char: float = 10.0,
    end_silence_ms: int = 300,
    speculation: bool = False,
    precise: bool = False,
    reply: str | None = None,
    first_clause_words: int | None = None,
) -> dict[str, str]:
    """Environment for a hark process with the fixed-delay fakes in every stage. Speculation
    (transcript and reply started at a pause, hark's default) is off unless asked for: it runs
    the fakes during the end-of-turn silence, which the overhead formula assumes they are not."""
    speculate = "true" if speculation else "false"

    def providers(options: dict[str, Any]) -> str:
        return json.dumps([{"kind": "scripted", "options": {**options, "precise": precise}}])

    llm: dict[str, Any] = {"first_token_ms": llm_first_token_ms, "token_ms": llm_token_ms}
    if reply is not None:
        llm["reply"] = reply
    clause = (
        {}
        if first_clause_words is None
        else {"HARK_CONVERSATION_FIRST_CLAUSE_WORDS": str(first_clause_words)}
    )
    return clause | {
        "HARK_WORKERS_ENABLED": "false",
        "HARK_VAD_END_SILENCE_MS": str(end_silence_ms),
        "HARK_CONVERSATION_SPECULATIVE_TRANSCRIPT": speculate,
        "HARK_CONVERSATION_SPECULATIVE_REPLY": speculate,
        "HARK_STT_PROVIDERS": providers({"final_ms": stt_final_ms}),
        "HARK_LLM_PROVIDERS": providers(llm),
        "HARK_TTS_PROVIDERS": providers(
            {"first_audio_ms": tts_first_audio_ms, "ms_per_char": tts_ms_per_char}
        ),
    }


class ServerProcess:
    """A server subprocess on a free port; ``cpu`` pins it to those cores (``taskset -c``)."""

    def __init__(
        self,
        command: list[str],
        *,
        env: dict[str, str] | None = None,
        cpu: set[int] | None = None,
        health_path: str = "/health",
        start_timeout: float = 180.0,
        log_path: Path | None = None,
    ) -> None:
        self.port = free_port()
        self.command = [part.replace("{port}", str(self.port)) for part in command]
        self._data_dir = tempfile.TemporaryDirectory(prefix="hark-bench-")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("HARK_")}
        self.env.update(
            {
                "HARK_SERVER_LOG_LEVEL": "warning",
                "HARK_MEETINGS_DATA_DIR": self._data_dir.name,
                "HARK_SECURITY_MAX_SESSIONS": "100000",
                "HARK_SECURITY_RATE_LIMIT_PER_MINUTE": "1000000",
                "PYTHONUNBUFFERED": "1",
            }
        )
        self.env.update(env or {})
        self.cpu = cpu
        self.health_path = health_path
        self.start_timeout = start_timeout
        self.log_path = log_path or Path(self._data_dir.name) / "server.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_base(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def _preexec(self) -> Callable[[], None] | None:
        cpu = self.cpu
        if cpu is None:
            return None

        def pin() -> None:
            os.sched_setaffinity(0, cpu)

        return pin

    def __enter__(self) -> ServerProcess:
        log = open(self.log_path, "wb")  # closed in __exit__
        self._log = log
        self.process = subprocess.Popen(
            self.command, env=self.env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=self._preexec()
        )
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(self.base_url + self.health_path, timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.__exit__()
        raise RuntimeError(f"server not healthy within {self.start_timeout} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if hasattr(self, "_log"):
            self._log.close()
        self._data_dir.cleanup()


class HarkServer(ServerProcess):
    """``hark serve`` with the stall probe (``hark.bench.probe``): GC pauses and event-loop lag."""

    def __init__(self, env: dict[str, str], *, cpu: set[int] | None = None) -> None:
        self.probe_path = Path(tempfile.mkdtemp(prefix="hark-probe-")) / "probe.jsonl"
        self._probe_events: list[list[Any]] = []
        self._probe_read = 0
        command = [sys.executable, "-m", "hark.bench.probe", str(self.probe_path), "serve"]
        super().__init__(
            [*command, "--host", "127.0.0.1", "--port", "{port}"], env={**PLUGIN_ENV, **env}, cpu=cpu
        )

    def __enter__(self) -> HarkServer:
        super().__enter__()
        return self

    def stalls(self) -> list[list[Any]]:
        """What the probe has recorded so far (it writes every half second). Read on from where
        the last call stopped: the capacity ramp asks after every window, and parsing the whole
        file each time held the bench client's loop longer and longer."""
        from hark.bench.probe import parse

        with contextlib.suppress(OSError), self.probe_path.open("rb") as probe_file:
            probe_file.seek(self._probe_read)
            data = probe_file.read()
            whole = data.rfind(b"\n") + 1  # a line still being written waits for the next call
            self._probe_read += whole
            self._probe_events.extend(parse(data[:whole].decode("utf-8", errors="replace")))
        return list(self._probe_events)

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        self.probe_path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self.probe_path.parent.rmdir()


def hark_server(env: dict[str, str], *, cpu: set[int] | None = None) -> HarkServer:
    """``hark serve`` with ``env``; the fixed-delay fakes (kind ``scripted``) are registered."""
    return HarkServer(env, cpu=cpu)


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds of each thread of a process (thread id → utime + stime)."""
    out: dict[int, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = (task / "stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
            out[int(task.name)] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return out


CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads included (from /proc/PID/stat)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    # After the command name: state is field 3; utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MiB (VmRSS from /proc/PID/status)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0
