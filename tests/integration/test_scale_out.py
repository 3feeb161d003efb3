"""Scale-out with real parts on loopback: HAProxy in front of two ``hark serve`` processes that share
a real redis-server. Sessions are spread over both instances; one instance is SIGKILLed in the
middle of the conversations; its clients reconnect through HAProxy with their resume tokens, land
on the survivor and carry on: every turn finished before the kill is in what the LLM sees next,
and the next answer is spoken.

Figures are printed (run with ``-s``): how the sessions split, how long HAProxy took to mark the
dead instance down, and each dropped client's time from the kill to ``hark.resumed`` and to the
first audio of its next answer."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import inspect
import json
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import AsyncOpenAI
from redis.asyncio import Redis

from tests.realtime_client import Received, Recorder, send_audio
from tests.redis_server import RedisServer
from tests.servers import FakeChatLLM, HarkProcess, ThreadedServer, free_port
from tests.speech import silence, speak

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
REPLY = "Noted, I will keep that in mind."
COLOURS = ["red", "blue", "green", "yellow"]
QUESTION = "Which colour did I tell you?"
NAMES = ("hark-a", "hark-b")

# The configuration docs/deploy.md shows ("Scale-out: several instances behind HAProxy"), with the
# addresses left for the test to fill in. A WebSocket is one long exchange: once upgraded only
# `timeout tunnel` applies. Health checks ask /ready, which turns 503 while an instance drains or
# is full; a refused connection marks the server down at once and the request goes elsewhere.
HAPROXY_CFG = """\
global
    maxconn 4096
    stats socket {stats} mode 600 level admin

defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    timeout http-request 10s
    timeout tunnel 1h
    timeout client-fin 5s
    retries 3
    option redispatch 1

frontend hark
    bind {bind}
    option forwardfor
    default_backend hark

backend hark
    balance leastconn
    option httpchk
    http-check send meth GET uri /ready
    http-check expect status 200
    default-server check inter 1s fall 2 rise 2 observe layer4 error-limit 1 on-error mark-down
    server hark-a {a}
    server hark-b {b}
"""


def haproxy_binary() -> str:
    path = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/usr/local/sbin")
    if path is not None:
        return path
    reason = "haproxy is not installed (apt-get install -y haproxy; `make test` installs it)"
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI is set, so the test set-up must provide it")
    pytest.skip(reason)


class HAProxy:
    """A real haproxy in the foreground, its config generated into ``directory``."""

    def __init__(self, directory: Path, servers: dict[str, int]) -> None:
        self.binary = haproxy_binary()
        self.port = free_port()
        self.stats_path = directory / "stats.sock"
        self.config_path = directory / "haproxy.cfg"
        self.log_path = directory / "haproxy.log"
        a, b = (f"127.0.0.1:{servers[name]}" for name in NAMES)
        self.config_path.write_text(
            HAPROXY_CFG.format(stats=self.stats_path, bind=f"127.0.0.1:{self.port}", a=a, b=b)
        )
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stat(self) -> dict[str, dict[str, str]]:
        """``show stat`` of the backend's servers, by server name."""
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(str(self.stats_path))
            sock.sendall(b"show stat\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        header, *rows = data.decode().strip().splitlines()
        names = header.lstrip("# ").split(",")
        stats = [dict(zip(names, row.split(","), strict=False)) for row in rows]
        return {s["svname"]: s for s in stats if s["pxname"] == "hark" and s["svname"].startswith("hark-")}

    def wait_for(self, server: str, status: str, timeout: float = 20) -> float:
        """Seconds until ``server``'s status starts with ``status`` (UP, DOWN)."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            with contextlib.suppress(OSError, KeyError):
                if self.stat()[server]["status"].startswith(status):
                    return time.monotonic() - started
            time.sleep(0.05)
        raise TimeoutError(f"haproxy: {server} not {status} within {timeout} s: {self.log_tail()}")

    def __enter__(self) -> HAProxy:
        subprocess.run([self.binary, "-c", "-q", "-f", str(self.config_path)], check=True)
        with open(self.log_path, "wb") as log:  # the child keeps its own copy of the descriptor
            self.process = subprocess.Popen(
                [self.binary, "-db", "-f", str(self.config_path)], stdout=log, stderr=subprocess.STDOUT
            )
        for server in NAMES:
            self.wait_for(server, "UP")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-2000:] if self.log_path.exists() else ""


@dataclass
class Cluster:
    llm: FakeChatLLM
    redis: RedisServer
    instances: dict[str, HarkProcess]
    proxy: HAProxy


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    directory = tmp_path_factory.mktemp("scale-out")
    llm = FakeChatLLM(reply=REPLY)
    with RedisServer(directory / "redis") as redis, ThreadedServer(llm.app()) as llm_server:
        env = {
            "HARK_REDIS_URL": redis.url,
            "HARK_LLM_BASE_URL": llm_server.base_url + "/v1",
            "HARK_LLM_TIMEOUT": "10",
            "HARK_WORKERS_ENABLED": "false",
        }
        instances = {name: HarkProcess(env=env, log_path=directory / f"{name}.log") for name in NAMES}
        with contextlib.ExitStack() as stack:
            # One after the other: model loading is CPU-bound, and two at once on two busy cores
            # took longer than HarkProcess's start-up limit.
            for hark in instances.values():
                wait_ready(stack.enter_context(hark))
            ports = {name: hark.port for name, hark in instances.items()}
            with HAProxy(directory, ports) as proxy:
                yield Cluster(llm, redis, instances, proxy)


def wait_ready(instance: HarkProcess, timeout: float = 60) -> HarkProcess:
    deadline = time.monotonic() + timeout
    while httpx.get(instance.base_url + "/ready", timeout=5).status_code != 200:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{instance.base_url} not ready within {timeout} s")
        time.sleep(0.1)
    return instance


@dataclass
class Client:
    """One caller talking to hark through HAProxy with the official SDK."""

    colour: str
    rec: Recorder = field(default_factory=Recorder)
    conn: Any = None
    session_id: str = ""
    token: str = ""
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    _stack: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)

    async def connect(self, base_url: str, *, resume: str | None = None) -> None:
        await self._stack.aclose()
        self._stack = contextlib.AsyncExitStack()
        self.rec, self.closed = Recorder(), asyncio.Event()
        client = AsyncOpenAI(base_url=base_url + "/v1", api_key="none", max_retries=0)
        self._stack.push_async_callback(client.close)
        self.conn = await self._stack.enter_async_context(
            client.realtime.connect(model="hark", extra_query={"hark_events": "1"})
        )
        reader = asyncio.create_task(self._pump(self.conn, self.rec, self.closed))
        self._stack.push_async_callback(_cancel, reader)
        self.session_id = (await self.rec.wait_for("session.created")).session.id
        if resume is not None:
            await self.conn.send({"type": "hark.resume", "token": resume, "event_id": "resume"})
            await self.rec.wait_for("hark.resumed")
        after = _last(self.rec, "hark.resumed")
        self.token = (await self.rec.wait_for("hark.resume_token", after=after)).token

    @staticmethod
    async def _pump(conn: Any, rec: Recorder, closed: asyncio.Event) -> None:
        try:
            async for event in conn:
                if event.type == "response.output_audio.delta":
                    rec.audio += base64.b64decode(event.delta)
                rec.events.append(Received(time.monotonic(), event.type, event))
                rec._changed.set()
        finally:
            closed.set()
            rec._changed.set()

    async def turn(self, text: str) -> tuple[str, Any]:
        """Say ``text``; returns the transcript hark heard and the response.done event."""
        mark = self.rec.mark()
        await send_audio(self.conn, silence(300) + speak(text) + silence(1000), realtime_pace=False)
        heard = await self.rec.wait_for(
            "conversation.item.input_audio_transcription.completed", after=mark, timeout=60
        )
        done = await self.rec.wait_for("response.done", after=mark, timeout=60)
        return heard.transcript, done

    async def aclose(self) -> None:
        await self._stack.aclose()


def _last(rec: Recorder, kind: str) -> int:
    positions = [n for n, r in enumerate(rec.events) if r.type == kind]
    return positions[-1] if positions else 0


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def sessions_on(instance: HarkProcess) -> int:
    text = httpx.get(instance.base_url + "/metrics", timeout=5).text
    match = re.search(r'^hark_sessions_active\{transport="realtime"\} (\S+)$', text, re.M)
    return int(float(match.group(1))) if match else 0


async def saved(redis: Redis, session_id: str, items: int) -> bool:
    data = await redis.get(f"hark:session:{session_id}")
    return data is not None and len(json.loads(data)["history"]) >= items


async def until(predicate: Callable[[], bool | Awaitable[bool]], timeout: float, what: str) -> float:
    """Seconds until ``predicate()`` (sync or async) holds."""
    started = time.monotonic()
    while not await _value(predicate()):
        if time.monotonic() - started > timeout:
            raise TimeoutError(what)
        await asyncio.sleep(0.02)
    return time.monotonic() - started


@contextlib.asynccontextmanager
async def clients(count: int) -> AsyncIterator[list[Client]]:
    made = [Client(COLOURS[n % len(COLOURS)]) for n in range(count)]
    try:
        yield made
    finally:
        await asyncio.gather(*(c.aclose() for c in made), return_exceptions=True)


async def test_sessions_survive_an_instance_killed_mid_conversation(cluster: Cluster) -> None:
    proxy, llm = cluster.proxy, cluster.llm
    redis = Redis.from_url(cluster.redis.url)
    async with clients(len(COLOURS)) as callers:
        # 1. Every caller connects through HAProxy, one after the other, and finishes a turn.
        for caller in callers:
            await caller.connect(proxy.base_url)
        split = {name: sessions_on(hark) for name, hark in cluster.instances.items()}
        print(f"\nsessions per instance through haproxy (leastconn): {split}")
        assert all(split.values()) and sum(split.values()) == len(callers), split
        first = await asyncio.gather(*(c.turn(f"Please remember the colour {c.colour}.") for c in callers))
        for (heard, done), caller in zip(first, callers, strict=True):
            assert heard.strip() and done.response.status == "completed", caller.rec.summary()
            assert done.response.output[0].content[0].transcript == REPLY
        # The turn is over for the client; wait until its checkpoint is in Redis too.
        for caller in callers:
            await until(lambda c=caller: saved(redis, c.session_id, 2), 5, "state not saved")

        # 2. Kill one instance, with no warning, while its callers are mid-conversation.
        victim_name = "hark-a"
        victim, survivor = cluster.instances[victim_name], cluster.instances["hark-b"]
        on_victim = split[victim_name]
        before = {c.colour: (heard.strip(), c.token) for (heard, _), c in zip(first, callers, strict=True)}
        assert victim.process is not None
        killed_at = time.monotonic()
        victim.process.kill()
        marked_down = asyncio.create_task(asyncio.to_thread(proxy.wait_for, victim_name, "DOWN"))
        await until(lambda: sum(c.closed.is_set() for c in callers) >= on_victim, 10, "no caller dropped")
        dropped = [c for c in callers if c.closed.is_set()]
        kept = [c for c in callers if not c.closed.is_set()]
        assert len(dropped) == on_victim

        # 3. The dropped callers reconnect through HAProxy at once (it may not have marked the
        # dead instance down yet) with their tokens, and carry on.
        resumed_after: dict[str, float] = {}
        audio_after: dict[str, float] = {}

        async def come_back(caller: Client) -> tuple[str, Any]:
            await caller.connect(proxy.base_url, resume=before[caller.colour][1])
            resumed_after[caller.colour] = time.monotonic() - killed_at
            assert caller.rec.of("hark.resumed")[-1].items == 2
            result = await caller.turn(QUESTION)
            audio_after[caller.colour] = caller.rec.times("response.output_audio.delta")[0] - killed_at
            return result

        second = await asyncio.gather(*(come_back(c) for c in dropped))
        assert sessions_on(survivor) == len(callers), "every session is on the survivor now"
        assert not any(c.closed.is_set() for c in kept), "the survivor's own sessions carried on"

    # 4. What the LLM saw for each resumed caller's next turn: every turn finished before the kill.
    for caller, (heard_now, done) in zip(dropped, second, strict=True):
        assert done.response.status == "completed"
        assert len(caller.rec.audio) > 24_000, "the next answer was spoken (over 0.5 s of audio)"
        heard_before = before[caller.colour][0]
        [request] = [
            r["body"]["messages"]
            for r in llm.requests
            if [m["content"].strip() for m in r["body"]["messages"] if m["role"] == "user"]
            == [heard_before, heard_now.strip()]
        ]
        assert [(m["role"], m["content"].strip()) for m in request if m["role"] != "system"] == [
            ("user", heard_before),
            ("assistant", REPLY),
            ("user", heard_now.strip()),
        ]
    await redis.aclose()
    print(
        f"haproxy marked {victim_name} down {await marked_down:.2f} s after the kill; "
        f"{len(dropped)} dropped callers, kill -> hark.resumed: "
        + ", ".join(f"{v:.2f} s" for v in sorted(resumed_after.values()))
        + "; kill -> first audio of the next answer: "
        + ", ".join(f"{v:.2f} s" for v in sorted(audio_after.values()))
    )


async def _value(result: bool | Awaitable[bool]) -> bool:
    return await result if inspect.isawaitable(result) else result


def test_docs_show_the_tested_haproxy_config() -> None:
    """Every directive of the tested configuration, addresses aside, is in docs/deploy.md."""
    docs = (ROOT / "docs" / "deploy.md").read_text()
    for line in HAPROXY_CFG.splitlines():
        if line.strip() and "{" not in line:
            assert line in docs, f"docs/deploy.md lacks the tested haproxy line {line!r}"
