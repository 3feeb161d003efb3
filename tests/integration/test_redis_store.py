"""The Redis session store against a real redis-server (tests/redis_server.py): the store contract,
two hark instances sharing sessions, tokens and rate limits, and Redis going away (frozen, killed,
restarted) giving prompt StoreUnavailable errors and recovering without rebuilding the store.

Figures are printed (run with ``-s`` to see them): resume success rate and latency across
instances, time to the error with Redis frozen or killed, time to recover after a restart."""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from hark.config import Settings
from hark.sessionstore import SessionState, SessionStore, StoreUnavailable, build_store
from hark.sessionstore.redis_store import RedisSessionStore
from hark.sessionstore.resume import issue, resume
from tests.redis_server import RedisServer, free_port
from tests.unit.test_session_store import Advance, SessionStoreContract, StoreFactory, sample_state

TIMEOUT_S = 1.0
"""The stores' timeout_s in the outage tests; an outage must surface within it plus 20%."""
BOUND_S = TIMEOUT_S * 1.2


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


def new_prefix() -> str:
    return f"test-{uuid.uuid4().hex[:10]}:"


class TestRedisStore(SessionStoreContract):
    @pytest.fixture
    async def make_store(self, redis_server: RedisServer) -> AsyncIterator[StoreFactory]:
        stores: list[RedisSessionStore] = []
        prefix = new_prefix()

        async def make(*, state_ttl_s: float = 300.0) -> SessionStore:
            stores.append(
                RedisSessionStore(redis_server.url, key_prefix=prefix, state_ttl_s=state_ttl_s, timeout_s=2.0)
            )
            return stores[-1]

        yield make
        for store in stores:
            await store.aclose()

    @pytest.fixture
    def advance(self) -> Advance:
        return asyncio.sleep


@pytest.fixture
async def two_instances(
    redis_server: RedisServer,
) -> AsyncIterator[tuple[RedisSessionStore, RedisSessionStore]]:
    """Two stores sharing one Redis and prefix, as two hark instances would."""
    settings = Settings(redis={"url": redis_server.url, "key_prefix": new_prefix(), "resume_ttl_s": 60})
    a, b = build_store(settings), build_store(settings)
    assert isinstance(a, RedisSessionStore) and isinstance(b, RedisSessionStore)
    yield a, b
    await a.aclose()
    await b.aclose()


@pytest.fixture
async def raw(redis_server: RedisServer) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


# -- two instances -----------------------------------------------------------------------------------


async def test_a_session_resumes_on_the_other_instance(
    two_instances: tuple[RedisSessionStore, RedisSessionStore],
) -> None:
    a, b = two_instances
    await a.save("sess_on_a", sample_state(turns=3))
    token = await a.issue_resume_token("sess_on_a", 60)

    assert await b.redeem(token) == "sess_on_a"
    state = await b.load("sess_on_a")
    assert state is not None and state.history == sample_state(turns=3).history
    assert await a.redeem(token) is None, "used up for every instance"


async def test_resume_success_rate_and_latency_across_instances(
    two_instances: tuple[RedisSessionStore, RedisSessionStore],
) -> None:
    a, b = two_instances
    runs = 200
    ok = 0
    timings: list[float] = []
    for n in range(runs):
        await a.save(f"sess_{n}", sample_state(turns=10))
        token = await issue(a, f"sess_{n}", 60)
        started = time.perf_counter()
        resumed = await resume(b, token.token, new_session_id=f"sess_{n}_b", ttl_s=60)
        timings.append((time.perf_counter() - started) * 1000)
        if resumed is not None and resumed.state.history == sample_state(turns=10).history:
            ok += 1
    timings.sort()
    p50, p95 = statistics.median(timings), timings[int(0.95 * len(timings)) - 1]
    print(
        f"\nresume across instances: {ok}/{runs} succeeded ({100 * ok / runs:.1f}%); "
        f"redeem+load+save+issue+delete p50 {p50:.2f} ms, p95 {p95:.2f} ms, max {timings[-1]:.2f} ms"
    )
    assert ok == runs


async def test_an_expired_token_is_refused_on_the_other_instance(
    two_instances: tuple[RedisSessionStore, RedisSessionStore],
) -> None:
    a, b = two_instances
    await a.save("sess_1", sample_state())
    token = await issue(a, "sess_1", 1.0)
    await asyncio.sleep(1.3)
    started = time.perf_counter()
    assert await resume(b, token.token, new_session_id="sess_2", ttl_s=60) is None
    took_ms = (time.perf_counter() - started) * 1000
    print(f"\nexpired token (1 s TTL, tried at 1.3 s) refused in {took_ms:.2f} ms")
    assert await b.load("sess_2") is None


async def test_rate_limits_are_counted_across_instances(
    two_instances: tuple[RedisSessionStore, RedisSessionStore],
) -> None:
    a, b = two_instances
    results = await asyncio.gather(*((a if n % 2 else b).hit("key:shared", 10, 60) for n in range(40)))
    assert sum(allowed for allowed, _ in results) == 10
    allowed, retry_after = await b.hit("key:shared", 10, 60)
    assert not allowed and 58 < retry_after <= 60
    assert (await a.hit("key:other", 10, 60))[0]


async def test_prefixes_keep_deployments_apart(redis_server: RedisServer) -> None:
    one = RedisSessionStore(redis_server.url, key_prefix=new_prefix())
    two = RedisSessionStore(redis_server.url, key_prefix=new_prefix())
    await one.save("sess_1", sample_state())
    token = await one.issue_resume_token("sess_1", 60)
    assert await two.load("sess_1") is None
    assert await two.redeem(token) is None
    assert await one.redeem(token) == "sess_1"
    await one.aclose()
    await two.aclose()


async def test_every_key_expires_and_no_secret_is_in_a_key_name(
    two_instances: tuple[RedisSessionStore, RedisSessionStore], raw: Redis
) -> None:
    a, _ = two_instances
    await a.save("sess_1", sample_state())
    token = await a.issue_resume_token("sess_1", 60)
    await a.hit("key:sk-live-secret-api-key", 5, 60)
    await a.hit("ip:203.0.113.9", 5, 60)
    keys = [key.decode() async for key in raw.scan_iter(match=a.key_prefix + "*")]
    assert len(keys) == 5, keys  # state, session-token, resume, two counters
    for key in keys:
        assert 0 < await raw.pttl(key) <= 300_000, key
        assert token not in key and "sk-live" not in key and "203.0.113" not in key
        if await raw.type(key) == b"string":
            assert token.encode() not in (await raw.get(key) or b"")


async def test_unreadable_state_loads_as_none(
    two_instances: tuple[RedisSessionStore, RedisSessionStore], raw: Redis
) -> None:
    a, _ = two_instances
    await raw.set(a.key_prefix + "session:sess_bad", b"{not json", ex=60)
    assert await a.load("sess_bad") is None


# -- Redis going away --------------------------------------------------------------------------------


async def _each_call_fails_promptly(store: RedisSessionStore, label: str) -> list[float]:
    calls: dict[str, Callable[[], Awaitable[object]]] = {
        "ping": store.ping,
        "save": lambda: store.save("sess_1", sample_state()),
        "load": lambda: store.load("sess_1"),
        "issue": lambda: store.issue_resume_token("sess_1", 60),
        "redeem": lambda: store.redeem("A" * 43),
        "hit": lambda: store.hit("key:x", 5, 60),
        "delete": lambda: store.delete("sess_1"),
    }
    took: list[float] = []
    for name, call in calls.items():
        started = time.perf_counter()
        with pytest.raises(StoreUnavailable) as caught:
            await call()
        elapsed = time.perf_counter() - started
        took.append(elapsed)
        message = str(caught.value)
        assert message.startswith("session store unavailable: Redis at redis://127.0.0.1:"), message
        assert caught.value.operation, message
        assert elapsed <= BOUND_S, f"{name} took {elapsed:.3f} s (bound {BOUND_S} s): {message}"
    print(
        f"\n{label}: {len(took)} calls raised StoreUnavailable in "
        f"{min(took) * 1000:.1f}-{max(took) * 1000:.1f} ms (timeout_s {TIMEOUT_S} s, bound {BOUND_S:.1f} s); "
        f"e.g. {message!r}"
    )
    return took


async def test_unreachable_redis_raises_at_once_and_hides_the_password() -> None:
    store = RedisSessionStore(
        f"redis://:hunter2@127.0.0.1:{free_port()}/0", key_prefix=new_prefix(), timeout_s=TIMEOUT_S
    )
    took = await _each_call_fails_promptly(store, "nothing listening")
    assert max(took) < TIMEOUT_S
    with pytest.raises(StoreUnavailable) as caught:
        await store.ping()
    assert "hunter2" not in str(caught.value)
    await store.aclose()


async def test_wrong_or_missing_password_is_an_explicit_error(tmp_path: Path) -> None:
    with RedisServer(tmp_path / "auth", password="right-password") as server:
        for url in (
            f"redis://:hunter2@127.0.0.1:{server.port}/0",
            f"redis://127.0.0.1:{server.port}/0",
        ):
            store = RedisSessionStore(url, key_prefix=new_prefix(), timeout_s=TIMEOUT_S)
            with pytest.raises(StoreUnavailable, match="ping") as caught:
                await store.ping()
            assert "hunter2" not in str(caught.value) and "right-password" not in str(caught.value)
            print(f"\nbad credentials: {caught.value}")
            await store.aclose()
        store = RedisSessionStore(server.url, key_prefix=new_prefix(), timeout_s=TIMEOUT_S)
        await store.ping()
        await store.aclose()


async def test_frozen_redis_times_out_then_recovers(tmp_path: Path) -> None:
    with RedisServer(tmp_path / "frozen") as server:
        store = RedisSessionStore(server.url, key_prefix=new_prefix(), timeout_s=TIMEOUT_S)
        await store.save("sess_1", sample_state())  # a pooled connection exists
        server.pause()
        try:
            took = await _each_call_fails_promptly(store, "redis-server frozen (SIGSTOP)")
            assert min(took) >= TIMEOUT_S * 0.8, "a frozen server is found out by the timeout"
        finally:
            server.resume()
        started = time.perf_counter()
        await store.ping()
        loaded = await store.load("sess_1")
        print(f"after SIGCONT the first call succeeded in {(time.perf_counter() - started) * 1000:.1f} ms")
        assert loaded is not None
        # Calls cut off mid-reply must not leave a reply behind for the next call on that connection.
        for n in range(30):
            await store.save(f"sess_{n}", SessionState(instructions=str(n)))
            again = await store.load(f"sess_{n}")
            assert again is not None and again.instructions == str(n)
            assert await store.hit("key:after", 100, 60) == (True, 0.0)
            token = await store.issue_resume_token(f"sess_{n}", 60)
            assert await store.redeem(token) == f"sess_{n}"
        await store.aclose()


async def test_killed_redis_raises_then_recovers_on_restart_without_a_new_store(tmp_path: Path) -> None:
    # appendfsync always: what was saved before the kill is there after the restart.
    server = RedisServer(tmp_path / "killed", appendonly=True)
    server.start()
    try:
        a = RedisSessionStore(server.url, key_prefix="hark-test:", timeout_s=TIMEOUT_S)
        b = RedisSessionStore(server.url, key_prefix="hark-test:", timeout_s=TIMEOUT_S)
        await a.save("sess_1", sample_state(turns=4))
        token = await issue(a, "sess_1", 60)
        await b.ping()

        server.kill()
        await _each_call_fails_promptly(a, "redis-server killed (SIGKILL)")

        restart_s = server.start()  # the same port
        started = time.perf_counter()
        resumed = await resume(b, token.token, new_session_id="sess_2", ttl_s=60)
        first_call_ms = (time.perf_counter() - started) * 1000
        assert resumed is not None, "the session saved before the kill resumes after the restart"
        assert resumed.state.history == sample_state(turns=4).history
        assert (await a.hit("key:x", 5, 60))[0]
        print(
            f"restart on the same port answered PING after {restart_s * 1000:.0f} ms; the same store "
            f"objects' next call (a resume on the other instance) succeeded at once, "
            f"in {first_call_ms:.1f} ms"
        )
        await a.aclose()
        await b.aclose()
    finally:
        server.stop()


async def test_state_of_a_fresh_redis_is_empty_not_an_error(tmp_path: Path) -> None:
    """Without persistence a restart loses the sessions: resume is refused (None), not an error."""
    server = RedisServer(tmp_path / "volatile")
    server.start()
    try:
        store = RedisSessionStore(server.url, key_prefix="hark-test:", timeout_s=TIMEOUT_S)
        await store.save("sess_1", SessionState())
        token = await store.issue_resume_token("sess_1", 60)
        server.kill()
        server.start()
        assert await store.redeem(token) is None
        assert await store.load("sess_1") is None
        await store.aclose()
    finally:
        server.stop()
