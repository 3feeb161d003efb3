"""Security cores: tokens, credentials, start-up rule, origins, rate limits, session cap,
input-audio pacing and the outbound budget. Clocks are fakes; nothing sleeps."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI
from fastapi.testclient import TestClient

from hark.config import Settings
from hark.errors import ConfigError
from hark.security import (
    ANONYMOUS,
    AudioThrottle,
    AuthError,
    IdleTimer,
    MemoryJtiStore,
    MemoryRateLimiter,
    OutboundBudget,
    SessionCap,
    StoreJtiStore,
    StoreRateLimiter,
    TokenBucket,
    TokenError,
    TokenIssuer,
    Verdict,
    authenticate,
    check_startup,
    client_secrets_router,
    is_loopback,
    origin_allowed,
    scope_for,
)
from hark.security.auth import auth_message_credential, strip_credentials
from hark.security.idle import IdleWatch
from hark.security.tokens import ALGORITHM
from hark.sessionstore import MemorySessionStore, StoreUnavailable

SECRET = "s" * 40
OTHER_SECRET = "o" * 40
KEYS = ["sk-hark-first-key-0001", "sk-hark-second-key-002"]


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _claims(scope: str = "realtime:sess_a", **extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": "hark", "sub": scope, "jti": "j1", "iat": now, "nbf": now, "exp": now + 60, **extra}


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# -- tokens ---------------------------------------------------------------------------------


def issuer(**kwargs: Any) -> TokenIssuer:
    return TokenIssuer(SECRET, ttl_s=60, **kwargs)


async def test_a_minted_token_verifies_once_for_its_kind_and_session() -> None:
    tokens = issuer()
    minted = tokens.mint(scope_for("realtime"))
    assert minted.session_id.startswith("sess_") and minted.expires_at - time.time() == pytest.approx(
        60, abs=2
    )
    assert minted.value not in repr(minted)
    claims = await tokens.verify(minted.value, kind="realtime", session_id=minted.session_id)
    assert claims.sub == minted.scope and claims.jti == minted.jti and claims.kind == "realtime"
    header = jwt.get_unverified_header(minted.value)
    assert header["alg"] == "HS256"
    assert set(jwt.decode(minted.value, options={"verify_signature": False})) == {
        "iss",
        "sub",
        "jti",
        "iat",
        "nbf",
        "exp",
    }


def _forged(kind: str) -> str:
    claims = _claims()
    if kind == "expired":
        return issuer(clock=lambda: time.time() - 3600).mint("realtime:sess_a").value
    if kind == "not_yet_valid":
        return issuer(clock=lambda: time.time() + 3600).mint("realtime:sess_a").value
    if kind == "wrong_key":
        return jwt.encode(claims, OTHER_SECRET, algorithm="HS256")
    if kind == "alg_none":
        return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."
    if kind == "alg_none_signed":
        return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}.c2ln"
    if kind == "hs512":
        return jwt.encode(claims, SECRET * 2, algorithm="HS512")
    if kind == "rs256":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return jwt.encode(claims, key, algorithm="RS256")
    if kind == "tampered":
        good = issuer().mint("tts:sess_a").value
        head, _, sig = good.split(".")
        return f"{head}.{_b64(_claims('realtime:sess_a'))}.{sig}"
    if kind == "no_jti":
        return jwt.encode({k: v for k, v in claims.items() if k != "jti"}, SECRET, algorithm="HS256")
    if kind == "wrong_issuer":
        return jwt.encode({**claims, "iss": "someone"}, SECRET, algorithm="HS256")
    if kind == "other_session":
        return issuer().mint("realtime:sess_b").value
    if kind == "other_kind":
        return issuer().mint("tts:sess_a").value
    if kind == "garbage":
        return "not.a.jwt"
    raise AssertionError(kind)


@pytest.mark.parametrize(
    ("kind", "code"),
    [
        ("expired", "token_expired"),
        ("not_yet_valid", "token_not_yet_valid"),
        ("wrong_key", "token_invalid_signature"),
        ("alg_none", "token_algorithm_not_allowed"),
        ("alg_none_signed", "token_algorithm_not_allowed"),
        ("hs512", "token_algorithm_not_allowed"),
        ("rs256", "token_algorithm_not_allowed"),
        ("tampered", "token_invalid_signature"),
        ("no_jti", "token_missing_claim"),
        ("wrong_issuer", "token_wrong_issuer"),
        ("other_session", "token_wrong_session"),
        ("other_kind", "token_wrong_session"),
        ("garbage", "token_malformed"),
    ],
)
async def test_token_matrix_refuses_each_bad_token_with_a_reason(kind: str, code: str) -> None:
    tokens = issuer()
    with pytest.raises(TokenError) as caught:
        await tokens.verify(_forged(kind), kind="realtime", session_id="sess_a")
    assert caught.value.code == code
    assert caught.value.reason and "eyJ" not in caught.value.reason
    print(f"token {kind}: refused {code} ({caught.value.reason})")


async def test_a_token_is_single_use() -> None:
    tokens = issuer()
    minted = tokens.mint(scope_for("realtime"))
    await tokens.verify(minted.value, kind="realtime")
    with pytest.raises(TokenError) as caught:
        await tokens.verify(minted.value, kind="realtime")
    assert caught.value.code == "token_reused"


async def test_a_refused_binding_does_not_burn_the_token() -> None:
    tokens = issuer()
    minted = tokens.mint("realtime:sess_a")
    with pytest.raises(TokenError):
        await tokens.verify(minted.value, kind="tts")
    assert (await tokens.verify(minted.value, kind="realtime")).session_id == "sess_a"


def test_used_ids_are_forgotten_after_they_expire() -> None:
    clock = FakeClock(100.0)
    store = MemoryJtiStore(clock=clock)
    assert store.claim_now("a", 110.0) and not store.claim_now("a", 110.0)
    assert store.claim_now("b", 200.0) and len(store) == 2
    clock.now = 150.0
    assert store.claim_now("c", 300.0)
    assert len(store) == 2  # "a" expired and was dropped


def test_short_or_missing_secrets() -> None:
    with pytest.raises(ConfigError, match="at least 32 bytes"):
        TokenIssuer("short")
    a, b = TokenIssuer(None), TokenIssuer(None)  # a random key per process
    assert a.decode(a.mint("realtime:s").value, kind="realtime").session_id == "s"
    with pytest.raises(TokenError):
        b.decode(a.mint("realtime:s").value, kind="realtime")
    with pytest.raises(ValueError):
        a.mint("nonsense")


def test_client_secrets_route_mints_openai_shaped_tokens() -> None:
    tokens = issuer()
    app = FastAPI()
    app.include_router(client_secrets_router(tokens))
    with TestClient(app) as client:
        plain = client.post("/v1/realtime/client_secrets")
        assert plain.status_code == 200 and plain.headers["cache-control"] == "no-store"
        body = plain.json()
        assert set(body) == {"value", "expires_at", "session"}
        assert body["session"]["type"] == "realtime" and body["session"]["id"].startswith("sess_")
        claims = tokens.decode(body["value"], kind="realtime", session_id=body["session"]["id"])
        assert claims.expires_at == body["expires_at"]
        # OpenAI's body: longer lifetimes are capped at token_ttl_s; extra session fields ignored.
        asked = client.post(
            "/v1/realtime/client_secrets",
            json={
                "expires_after": {"anchor": "created_at", "seconds": 600},
                "session": {"type": "tts", "model": "x"},
            },
        ).json()
        assert asked["expires_at"] - time.time() <= 61 and asked["session"]["type"] == "tts"
        short = client.post("/v1/realtime/client_secrets", json={"expires_after": {"seconds": 10}}).json()
        assert short["expires_at"] - time.time() <= 11
        bad = client.post("/v1/realtime/client_secrets", json={"session": {"type": "transcription"}})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "session.type"
        assert client.post("/v1/realtime/client_secrets", content=b"{").status_code == 400


# -- credentials ----------------------------------------------------------------------------


def settings(**security: Any) -> Settings:
    return Settings(security=security)


async def test_authenticate_accepts_keys_and_tokens_where_they_belong() -> None:
    conf = settings(api_keys=KEYS)
    tokens = issuer()
    bearer = {"authorization": f"Bearer {KEYS[0]}"}
    principal = await authenticate(bearer, [], conf, tokens)
    assert principal is not None and (principal.id, principal.kind) == ("key:0", "api_key")
    browser = ["realtime", f"openai-insecure-api-key.{KEYS[1]}"]
    assert (await authenticate({}, browser, conf, tokens)).id == "key:1"  # type: ignore[union-attr]
    minted = tokens.mint("realtime:sess_x")
    principal = await authenticate({}, ["realtime", f"openai-insecure-api-key.{minted.value}"], conf, tokens)
    assert (
        principal is not None and principal.id == f"token:{minted.jti}" and principal.session_id == "sess_x"
    )
    assert KEYS[0] not in repr(principal)
    assert await authenticate({}, ["realtime"], conf, tokens) is None
    # REST (kind=None) takes API keys only, never session tokens.
    rest = {"authorization": f"Bearer {tokens.mint('realtime:s').value}"}
    with pytest.raises(AuthError) as caught:
        await authenticate(rest, [], conf, tokens, kind=None)
    assert caught.value.code == "invalid_api_key"
    for headers, code in [
        ({"authorization": "Bearer sk-wrong"}, "invalid_api_key"),
        ({"authorization": f"Basic {KEYS[0]}"}, "invalid_authorization"),
        ({"authorization": "Bearer "}, "invalid_authorization"),
    ]:
        with pytest.raises(AuthError) as caught:
            await authenticate(headers, [], conf, tokens)
        assert caught.value.code == code and KEYS[0] not in str(caught.value)


async def test_without_keys_auth_is_off() -> None:
    assert await authenticate({"authorization": "Bearer junk"}, [], settings(), None) is ANONYMOUS


def test_credential_helpers() -> None:
    assert strip_credentials(["realtime", "openai-insecure-api-key.abc"]) == ["realtime"]
    assert auth_message_credential('{"type": "hark.auth", "token": "t"}') == "t"
    for text in [
        None,
        "{",
        "[]",
        '{"type": "session.update"}',
        '{"type": "hark.auth", "token": 5}',
        "x" * 20000,
    ]:
        assert auth_message_credential(text) is None


# -- start-up -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("[::1]", True),
        ("::ffff:127.0.0.1", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.5", False),
        ("example.com", False),
        ("", False),
    ],
)
def test_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_startup_refuses_a_public_bind_without_keys() -> None:
    public = Settings(server={"host": "0.0.0.0"})
    with pytest.raises(ConfigError) as caught:
        check_startup(public)
    assert "0.0.0.0" in str(caught.value) and "HARK_SECURITY_API_KEYS" in str(caught.value)
    check_startup(Settings(server={"host": "127.0.0.1"}))
    check_startup(Settings(server={"host": "0.0.0.0"}, security={"api_keys": KEYS}))
    with pytest.raises(ConfigError, match="token_secret"):
        check_startup(Settings(security={"token_secret": "too-short"}))
    with pytest.raises(ConfigError, match=r"api_keys\[1\]"):
        check_startup(Settings(security={"api_keys": ["fine-key", " "]}))


# -- origins --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("origin", "host", "allowed", "ok"),
    [
        (None, "hark.example", [], True),
        ("http://127.0.0.1:8000", "127.0.0.1:8000", [], True),
        ("https://hark.example", "hark.example", [], True),
        ("https://hark.example:443", "hark.example", [], True),
        ("https://HARK.example", "hark.example:443", [], True),
        ("http://[::1]:8000", "[::1]:8000", [], True),
        ("http://evil.example", "127.0.0.1:8000", [], False),
        ("http://127.0.0.1:9000", "127.0.0.1:8000", [], False),
        ("null", "127.0.0.1:8000", [], False),
        ("http://127.0.0.1:8000", None, [], False),
        ("https://app.example.com", "hark.internal", ["https://app.example.com"], True),
        ("https://app.example.com:443", "hark.internal", ["https://app.example.com/"], True),
        ("http://app.example.com", "hark.internal", ["https://app.example.com"], False),
        ("https://evil.example", "hark.internal", ["https://app.example.com"], False),
        ("https://hark.internal", "hark.internal", ["https://app.example.com"], False),
        ("https://anything.example", "h", ["*"], True),
        ("null", "h", ["null"], True),
        ("https://user@app.example.com", "h", ["https://app.example.com"], False),
    ],
)
def test_origin_matrix(origin: str | None, host: str | None, allowed: list[str], ok: bool) -> None:
    assert origin_allowed(origin, host, allowed) is ok


# -- rate limits ----------------------------------------------------------------------------


def test_token_bucket_refills_at_its_rate() -> None:
    bucket = TokenBucket(3, 3 / 60, now=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(0.0) == pytest.approx(20.0)
    assert bucket.take(19.9) == pytest.approx(0.1)
    assert bucket.take(20.0) == 0.0
    assert bucket.available(1000.0) == 3.0  # never above capacity


def test_rate_limiter_windows_with_a_fake_clock() -> None:
    clock = FakeClock(0.0)
    limiter = MemoryRateLimiter(60, clock=clock)  # one a second, bursts of 60
    allowed = sum(limiter.hit_now("ip:a") == 0.0 for _ in range(100))
    assert allowed == 60
    assert limiter.hit_now("ip:a") == pytest.approx(1.0)
    assert limiter.hit_now("ip:b") == 0.0  # keys are independent
    clock.now = 30.0
    assert sum(limiter.hit_now("ip:a") == 0.0 for _ in range(100)) == 30
    # A fresh key: the burst, then the steady rate (one a second); never more than
    # burst + rate × elapsed, i.e. under 2 × 60 in its first minute and 60 a minute after.
    clock.now = 100.0
    burst = sum(limiter.hit_now("ip:c") == 0.0 for _ in range(100))
    served = 0
    for step in range(1, 601):
        clock.now = 100.0 + step * 0.1
        served += limiter.hit_now("ip:c") == 0.0
    assert burst == 60 and served == 60
    print(f"rate limiter 60/min: burst {burst}, then {served} in the next 60 s of hammering")


def test_rate_limiter_is_all_or_nothing_and_bounded() -> None:
    clock = FakeClock(0.0)
    limiter = MemoryRateLimiter(2, clock=clock, max_keys=10)
    assert limiter.hit_now("key:0", "ip:a") == 0.0
    assert limiter.hit_now("key:0", "ip:a") == 0.0
    assert limiter.hit_now("key:0", "ip:b") > 0  # the key is spent: ip:b is not charged
    assert limiter.hit_now("ip:b") == 0.0 and limiter.hit_now("ip:b") == 0.0
    for n in range(100):
        limiter.hit_now(f"ip:{n}")
    assert len(limiter) <= 10


# -- session cap ----------------------------------------------------------------------------


def test_session_cap() -> None:
    cap = SessionCap(2)
    first, second = cap.acquire(), cap.acquire()
    assert first is not None and second is not None and cap.current == 2
    assert cap.acquire() is None and cap.refused == 1
    first.release()
    first.release()  # idempotent
    assert cap.current == 1
    third = cap.acquire()
    assert third is not None and cap.current == 2 and cap.peak == 2
    second.release()
    third.release()
    assert cap.current == 0


# -- input audio ----------------------------------------------------------------------------


def test_audio_at_five_times_real_time_is_throttled_to_two() -> None:
    rate, chunk_s = 24_000, 0.1
    throttle = AudioThrottle(2.0, burst_s=2.0, sample_rate=rate)
    chunk = bytes(int(rate * chunk_s) * 2)
    client_t = server_t = 0.0
    max_buffered = 0.0
    for _ in range(100):  # 10 s of audio, offered at 5× real time
        now = max(client_t, server_t)  # the server reads when both are ready (TCP back-pressure)
        sleep = throttle.push(chunk, now)
        server_t = now + sleep
        max_buffered = max(max_buffered, throttle.buffered_s(server_t))
        client_t += chunk_s / 5
    wall = server_t
    sustained = (throttle.total_audio_s - throttle.burst_s) / wall
    print(
        f"audio 10 s at 5x: wall {wall:.2f} s, slept {throttle.total_sleep_s:.2f} s, "
        f"overall {throttle.total_audio_s / wall:.2f}x, beyond the 2 s burst {sustained:.2f}x, "
        f"max buffered {max_buffered:.2f} s"
    )
    assert throttle.total_audio_s == pytest.approx(10.0)
    assert sustained <= 2.0 + 1e-6
    assert max_buffered <= 2.0 + 1e-6 and throttle.max_buffered_s <= 2.0 + 1e-6
    assert throttle.buffered_s(wall + 10) == 0.0


def test_push_accounts_exactly_as_push_seconds_does() -> None:
    """``push`` has a short way for audio below the burst; every figure stays what
    ``push_seconds`` makes of the same audio at the same times, bursts and waits included."""
    import random

    rng = random.Random(7)
    fast = AudioThrottle(2.0, burst_s=0.5, sample_rate=24_000)
    slow = AudioThrottle(2.0, burst_s=0.5, sample_rate=24_000)
    now = 0.0
    for _ in range(5_000):
        now += rng.choice([0.0, 0.001, 0.005, 0.02, 0.05, 0.3])
        size = rng.choice([0, 960, 1920, 24_000, 96_000])
        assert fast.push(bytes(size), now) == slow.push_seconds(slow.duration(size), now)
        fields = ("_level", "_updated", "total_audio_s", "total_sleep_s", "max_buffered_s")
        assert [getattr(fast, f) for f in fields] == [getattr(slow, f) for f in fields]


def test_audio_at_real_time_is_never_delayed() -> None:
    throttle = AudioThrottle(2.0, sample_rate=16_000)
    for step in range(600):
        assert throttle.push(3200, now=step * 0.1, sample_rate=16_000) == 0.0
    assert throttle.buffered_s(60.0) == 0.0


def test_one_huge_append_waits_for_its_excess() -> None:
    throttle = AudioThrottle(2.0, burst_s=2.0, sample_rate=24_000)
    sleep = throttle.push(24_000 * 2 * 10, now=5.0)  # 10 s at once
    assert sleep == pytest.approx(4.0)
    assert throttle.buffered_s(5.0 + sleep) == pytest.approx(2.0)


# -- outbound buffer ------------------------------------------------------------------------


def test_outbound_budget_drops_audio_then_closes() -> None:
    budget = OutboundBudget(1000)
    assert budget.offer(400, audio=True) is Verdict.SEND
    assert budget.offer(400, audio=True) is Verdict.SEND
    assert budget.offer(400, audio=True) is Verdict.DROP
    assert budget.dropped_events == 1 and budget.queued == 800
    assert budget.offer(300, audio=False) is Verdict.SEND  # control is never dropped ...
    assert budget.excess == 100  # ... queued audio makes room for it
    budget.discard(400, audio=True)
    assert budget.excess == 0 and budget.queued == 700 and budget.dropped_events == 2
    budget.sent(400, audio=True)
    budget.sent(300, audio=False)
    assert budget.queued == 0
    assert budget.offer(900, audio=False) is Verdict.SEND
    assert budget.offer(200, audio=False) is Verdict.CLOSE  # control alone over budget
    assert budget.offer(200, audio=True) is Verdict.DROP


def test_idle_timer() -> None:
    idle = IdleTimer(60.0, now=0.0)
    idle.touch(30.0)
    assert idle.remaining(50.0) == 40.0 and not idle.expired(89.9) and idle.expired(90.0)


async def test_idle_watch_reads_until_nothing_happens_for_the_timeout() -> None:
    frames: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    watch = IdleWatch(0.05)
    frames.put_nowait({"type": "websocket.receive", "text": "hi"})
    assert await watch.receive(frames.get) == {"type": "websocket.receive", "text": "hi"}
    assert await watch.receive(frames.get) is None  # nothing came: idle, and the read was ended
    assert frames.qsize() == 0 and asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]
    watch.cancel()


async def test_idle_watch_is_held_and_leaves_other_cancels_alone() -> None:
    frames: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    watch = IdleWatch(0.05)
    watch.holds += 1
    loop = asyncio.get_running_loop()
    loop.call_later(0.2, frames.put_nowait, {"type": "websocket.receive", "text": "late"})
    assert await watch.receive(frames.get) == {"type": "websocket.receive", "text": "late"}
    watch.holds -= 1
    reader = asyncio.ensure_future(watch.receive(frames.get))
    await asyncio.sleep(0)
    reader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reader
    watch.cancel()


def test_algorithm_is_pinned() -> None:
    assert ALGORITHM == "HS256"


# -- shared stores (Redis-compatible adapters) ----------------------------------------------


class DownStore:
    async def hit(self, key: str, limit: int, window_s: float) -> tuple[bool, float]:
        raise StoreUnavailable("redis did not answer in 2 s")


async def test_store_adapters_share_limits_and_single_use() -> None:
    clock = FakeClock(0.0)
    store = MemorySessionStore(clock=clock)  # the same SessionStore.hit as the Redis store
    limiter = StoreRateLimiter(store, 2)
    assert [await limiter.hit("ip:a", "key:0") for _ in range(2)] == [0.0, 0.0]
    assert await limiter.hit("ip:a") == pytest.approx(60.0)
    clock.now = 60.0
    assert await limiter.hit("ip:a") == 0.0
    tokens = TokenIssuer(SECRET, store=StoreJtiStore(store))
    minted = tokens.mint("realtime:sess_s")
    await tokens.verify(minted.value, kind="realtime")
    with pytest.raises(TokenError) as caught:
        await TokenIssuer(SECRET, store=StoreJtiStore(store)).verify(minted.value, kind="realtime")
    assert caught.value.code == "token_reused"  # another instance sharing the store


async def test_store_adapters_fail_open_for_limits_and_closed_for_tokens() -> None:
    assert await StoreRateLimiter(DownStore(), 1).hit("ip:a") == 0.0
    tokens = TokenIssuer(SECRET, store=StoreJtiStore(DownStore()))
    with pytest.raises(TokenError) as caught:
        await tokens.verify(tokens.mint("realtime:s").value, kind="realtime")
    assert caught.value.code == "token_store_unavailable"
