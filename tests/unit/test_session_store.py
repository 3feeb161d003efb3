"""The session-store contract (hark.sessionstore), run here against the in-memory store with a fake clock.

``SessionStoreContract`` is reused by tests/integration/test_redis_store.py against a real
redis-server: a subclass supplies ``make_store`` (a factory taking ``state_ttl_s``) and ``advance``
(moving its clock: the fake one here, real sleeping for Redis)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from hark.config import Settings
from hark.engines.base import ChatMessage
from hark.errors import ConfigError
from hark.pipeline.history import History
from hark.sessionstore import MemorySessionStore, SessionState, SessionStore, StoreUnavailable, build_store
from hark.sessionstore.resume import Checkpointer, issue, restore_history, resume, snapshot
from hark.sessionstore.store import HistoryEntry

StoreFactory = Callable[..., Awaitable[SessionStore]]
Advance = Callable[[float], Awaitable[None]]


def sample_state(turns: int = 2, instructions: str | None = "Be brief.") -> SessionState:
    history: list[HistoryEntry] = []
    for n in range(1, turns + 1):
        history.append(HistoryEntry(item_id=f"item_u{n}", role="user", content=f"question {n} — ünïcode"))
        history.append(HistoryEntry(item_id=f"item_a{n}", role="assistant", content=f"answer {n}"))
    return SessionState(
        history=history,
        instructions=instructions,
        turn_detection={"type": "server_vad", "threshold": 0.6, "silence_duration_ms": 400},
    )


class SessionStoreContract:
    """What every SessionStore does. Times are in seconds of the subclass's clock."""

    @pytest.fixture
    async def make_store(self) -> AsyncIterator[StoreFactory]:
        raise NotImplementedError
        yield  # pragma: no cover

    @pytest.fixture
    def advance(self) -> Advance:
        raise NotImplementedError

    @pytest.fixture
    async def store(self, make_store: StoreFactory) -> SessionStore:
        return await make_store()

    # -- state ---------------------------------------------------------------------------------

    async def test_is_a_session_store(self, store: SessionStore) -> None:
        assert isinstance(store, SessionStore)
        await store.ping()

    async def test_save_then_load_returns_the_same_state(self, store: SessionStore) -> None:
        state = sample_state()
        await store.save("sess_1", state)
        loaded = await store.load("sess_1")
        assert loaded is not None
        assert loaded.history == state.history
        assert loaded.instructions == "Be brief."
        assert loaded.turn_detection == state.turn_detection
        assert loaded.updated_at > 0, "the store stamps the save time"

    async def test_turn_detection_off_and_defaults_survive(self, store: SessionStore) -> None:
        await store.save("off", SessionState(turn_detection=None))
        await store.save("defaults", SessionState())
        off, defaults = await store.load("off"), await store.load("defaults")
        assert off is not None and off.turn_detection is None
        assert defaults is not None and defaults.turn_detection == {} and defaults.instructions is None

    async def test_unknown_session_loads_as_none(self, store: SessionStore) -> None:
        assert await store.load("sess_unknown") is None

    async def test_save_replaces_and_keeps_a_copy(self, store: SessionStore) -> None:
        state = sample_state(turns=1)
        await store.save("sess_1", state)
        state.instructions = "changed after the save"
        state.history.append(HistoryEntry(item_id="late", role="user", content="not saved"))
        loaded = await store.load("sess_1")
        assert loaded is not None
        assert loaded.instructions == "Be brief." and len(loaded.history) == 2
        await store.save("sess_1", sample_state(turns=3, instructions=None))
        loaded = await store.load("sess_1")
        assert loaded is not None and len(loaded.history) == 6 and loaded.instructions is None

    async def test_sessions_are_separate(self, store: SessionStore) -> None:
        await store.save("a", sample_state(turns=1))
        await store.save("b", sample_state(turns=2))
        a, b = await store.load("a"), await store.load("b")
        assert a is not None and b is not None
        assert (len(a.history), len(b.history)) == (2, 4)

    async def test_state_expires_ttl_after_the_last_save(
        self, make_store: StoreFactory, advance: Advance
    ) -> None:
        store = await make_store(state_ttl_s=1.0)
        await store.save("sess_1", sample_state())
        await advance(0.6)
        await store.save("sess_1", sample_state())  # the save restarts the clock
        await advance(0.6)
        assert await store.load("sess_1") is not None
        await advance(0.6)
        assert await store.load("sess_1") is None

    async def test_delete_forgets_state_and_revokes_the_token(self, store: SessionStore) -> None:
        await store.save("sess_1", sample_state())
        token = await store.issue_resume_token("sess_1", 60)
        await store.delete("sess_1")
        assert await store.load("sess_1") is None
        assert await store.redeem(token) is None
        await store.delete("sess_1")  # again, and unknown ids, are fine
        await store.delete("never_saved")

    # -- resume tokens -------------------------------------------------------------------------

    async def test_token_is_opaque_random_and_redeems_once(self, store: SessionStore) -> None:
        tokens = {await store.issue_resume_token(f"sess_{n}", 60) for n in range(5)}
        assert len(tokens) == 5
        for token in tokens:
            assert re.fullmatch(r"[A-Za-z0-9_-]{43,}", token), token
            assert "sess" not in token
        token = await store.issue_resume_token("sess_x", 60)
        assert await store.redeem(token) == "sess_x"
        assert await store.redeem(token) is None, "single use"

    async def test_unknown_and_malformed_tokens_are_refused(self, store: SessionStore) -> None:
        for token in ["", "short", "x" * 43, "x" * 5000, "not a token!", "ключ" * 20, "a/b" * 20]:
            assert await store.redeem(token) is None

    async def test_expired_token_is_refused(self, store: SessionStore, advance: Advance) -> None:
        await store.save("sess_1", sample_state())
        short = await store.issue_resume_token("sess_1", 1.0)
        await advance(1.3)
        assert await store.redeem(short) is None
        assert await store.load("sess_1") is not None, "the state outlives the token"

    async def test_new_token_revokes_the_previous_one(self, store: SessionStore) -> None:
        first = await store.issue_resume_token("sess_1", 60)
        second = await store.issue_resume_token("sess_1", 60)
        other = await store.issue_resume_token("sess_2", 60)
        assert await store.redeem(first) is None
        assert await store.redeem(second) == "sess_1"
        assert await store.redeem(other) == "sess_2", "other sessions' tokens are untouched"

    async def test_a_save_extends_the_live_token(self, make_store: StoreFactory, advance: Advance) -> None:
        store = await make_store(state_ttl_s=1.5)
        await store.save("sess_1", sample_state())
        token = await store.issue_resume_token("sess_1", 1.5)
        await advance(1.0)
        await store.save("sess_1", sample_state())  # token now lives 1.5 s from here
        await advance(1.0)
        assert await store.redeem(token) == "sess_1"

    async def test_concurrent_redeems_let_exactly_one_through(self, store: SessionStore) -> None:
        token = await store.issue_resume_token("sess_1", 60)
        results = await asyncio.gather(*(store.redeem(token) for _ in range(20)))
        assert results.count("sess_1") == 1 and results.count(None) == 19

    # -- rate limits ---------------------------------------------------------------------------

    async def test_rate_limit_window(self, store: SessionStore, advance: Advance) -> None:
        assert await store.hit("ip:10.0.0.1", 2, 2.0) == (True, 0.0)
        await advance(1.5)
        assert await store.hit("ip:10.0.0.1", 2, 2.0) == (True, 0.0)
        allowed, retry_after = await store.hit("ip:10.0.0.1", 2, 2.0)
        assert not allowed
        assert 0.0 < retry_after <= 0.6, retry_after  # the window started at the first hit
        assert (await store.hit("ip:10.0.0.2", 2, 2.0))[0], "keys are counted separately"
        await advance(0.7)
        assert await store.hit("ip:10.0.0.1", 2, 2.0) == (True, 0.0), "a new window"

    async def test_concurrent_hits_never_exceed_the_limit(self, store: SessionStore) -> None:
        results = await asyncio.gather(*(store.hit("key:burst", 10, 30.0) for _ in range(50)))
        assert sum(allowed for allowed, _ in results) == 10
        assert all(0 < retry <= 30.0 for allowed, retry in results if not allowed)

    # -- arguments and lifecycle ---------------------------------------------------------------

    async def test_bad_arguments_are_value_errors(self, store: SessionStore) -> None:
        with pytest.raises(ValueError, match="session id"):
            await store.save("", sample_state())
        with pytest.raises(ValueError, match="session id"):
            await store.load("x" * 500)
        with pytest.raises(ValueError, match="ttl_s"):
            await store.issue_resume_token("sess_1", 0)
        with pytest.raises(ValueError, match="limit"):
            await store.hit("k", 0, 60)
        with pytest.raises(ValueError, match="window_s"):
            await store.hit("k", 1, -1)

    async def test_aclose_is_idempotent(self, make_store: StoreFactory) -> None:
        store = await make_store()
        await store.aclose()
        await store.aclose()


# -- the in-memory store ----------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    async def advance(self, seconds: float) -> None:
        self.now += seconds


class TestMemoryStore(SessionStoreContract):
    @pytest.fixture
    def clock(self) -> FakeClock:
        return FakeClock()

    @pytest.fixture
    async def make_store(self, clock: FakeClock) -> AsyncIterator[StoreFactory]:
        stores: list[MemorySessionStore] = []

        async def make(*, state_ttl_s: float = 300.0) -> SessionStore:
            stores.append(MemorySessionStore(state_ttl_s=state_ttl_s, clock=clock))
            return stores[-1]

        yield make
        for store in stores:
            await store.aclose()

    @pytest.fixture
    def advance(self, clock: FakeClock) -> Advance:
        return clock.advance

    async def test_expired_records_are_swept(self, clock: FakeClock) -> None:
        store = MemorySessionStore(state_ttl_s=10, clock=clock)
        for n in range(100):
            await store.save(f"s{n}", SessionState())
            await store.issue_resume_token(f"s{n}", 10)
            await store.hit(f"k{n}", 5, 10)
        assert len(store) == 400
        await clock.advance(11)
        await store.ping()
        await store.load("s0")  # any call past the sweep interval sweeps
        assert len(store) == 0
        assert not store._states and not store._tokens and not store._current and not store._counters

    async def test_the_expiry_boundary_is_exclusive(self, clock: FakeClock) -> None:
        store = MemorySessionStore(state_ttl_s=10, clock=clock)
        token = await store.issue_resume_token("s", 5)
        await clock.advance(5)
        assert await store.redeem(token) is None


# -- build_store --------------------------------------------------------------------------------------


async def test_build_store_defaults_to_memory() -> None:
    store = build_store(Settings(redis={"resume_ttl_s": 42}))
    assert isinstance(store, MemorySessionStore) and store.state_ttl_s == 42


async def test_build_store_with_a_url_is_redis_and_connects_lazily() -> None:
    from hark.sessionstore.redis_store import RedisSessionStore

    settings = Settings(redis={"url": "redis://:s3cret@127.0.0.1:1/0", "key_prefix": "x:", "timeout_s": 0.5})
    store = build_store(settings)
    assert isinstance(store, RedisSessionStore)
    assert store.where == "redis://127.0.0.1:1/0", "no credentials in messages"
    with pytest.raises(StoreUnavailable) as caught:
        await store.ping()
    assert "s3cret" not in str(caught.value) and "127.0.0.1:1" in str(caught.value)
    await store.aclose()


def test_build_store_refuses_a_url_that_is_not_redis() -> None:
    with pytest.raises(ConfigError, match=r"redis\.url must start with"):
        build_store(Settings(redis={"url": "http://user:pw@example.com"}))


# -- resume helpers ------------------------------------------------------------------------------------


def test_snapshot_and_restore_round_trip_a_history() -> None:
    history = History("system", 10)
    history.add("u1", "user", "hello")
    history.add("a1", "assistant", "hi there")
    entries = [
        ("u1", ChatMessage("user", "hello")),
        ("a1", ChatMessage("assistant", "hi there")),
        ("t1", ChatMessage("tool", "tool output is not history")),
    ]
    state = snapshot(entries, instructions="Speak French.", turn_detection=None)
    assert [e.item_id for e in state.history] == ["u1", "a1"]
    assert state.turn_detection is None and state.instructions == "Speak French."

    restored = History("system", 10)
    restored.add("stale", "user", "replaced")
    restore_history(state, restored)
    assert restored.messages() == history.messages()
    assert restored.text_of("a1") == "hi there" and restored.text_of("stale") is None


async def test_resume_moves_the_session_to_the_new_id() -> None:
    store = MemorySessionStore()
    await store.save("sess_old", sample_state())
    first = await issue(store, "sess_old", 60)
    resumed = await resume(store, first.token, new_session_id="sess_new", ttl_s=60)
    assert resumed is not None
    assert (resumed.previous_session_id, resumed.session_id) == ("sess_old", "sess_new")
    assert resumed.state.history == sample_state().history
    assert await store.load("sess_old") is None, "the old id is dead: a late save cannot clobber"
    assert await store.load("sess_new") is not None
    assert await resume(store, first.token, new_session_id="sess_3", ttl_s=60) is None, "single use"
    again = await resume(store, resumed.token.token, new_session_id="sess_3", ttl_s=60)
    assert again is not None and again.state.history == sample_state().history


async def test_resume_refuses_when_the_state_is_gone() -> None:
    store = MemorySessionStore()
    token = await issue(store, "sess_never_saved", 60)
    assert await resume(store, token.token, new_session_id="sess_new", ttl_s=60) is None


class FlakyStore(MemorySessionStore):
    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.delay = 0.0
        self.saved: list[SessionState] = []

    async def save(self, session_id: str, state: SessionState) -> None:
        await asyncio.sleep(self.delay)
        if self.down:
            raise StoreUnavailable("session store unavailable: test", operation="save")
        self.saved.append(state)
        await super().save(session_id, state)


async def test_checkpointer_coalesces_and_saves_the_newest_state() -> None:
    store = FlakyStore()
    store.delay = 0.01
    counter = {"n": 0}

    def take() -> SessionState:
        return SessionState(instructions=str(counter["n"]))

    checkpointer = Checkpointer(store, "sess_1", take)
    for n in range(1, 21):
        counter["n"] = n
        checkpointer.request()
        await asyncio.sleep(0)
    await checkpointer.flush()
    assert 1 <= len(store.saved) <= 3, len(store.saved)
    loaded = await store.load("sess_1")
    assert loaded is not None and loaded.instructions == "20"
    assert checkpointer.healthy and checkpointer.saves == len(store.saved)


async def test_checkpointer_reports_failures_and_saves_once_the_store_is_back() -> None:
    store = FlakyStore()
    store.down = True
    errors: list[Any] = []
    checkpointer = Checkpointer(
        store, "sess_1", lambda: SessionState(instructions="x"), on_error=errors.append
    )
    checkpointer.request()
    await checkpointer.flush()
    assert not checkpointer.healthy and len(errors) >= 1
    assert isinstance(errors[0], StoreUnavailable)
    assert await store.load("sess_1") is None
    store.down = False
    await checkpointer.flush()  # the unsaved change is retried
    assert checkpointer.healthy and await store.load("sess_1") is not None
