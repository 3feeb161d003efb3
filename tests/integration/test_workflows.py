"""Post-meeting workflows against real loopback receivers (RELIABILITY #20 and #21).

Receivers are Starlette apps on 127.0.0.1, allow-listed where they must be reached. The canary is a
bare TCP listener on 127.0.0.1 and ::1 that counts every connection it accepts: for every SSRF case
it must stay at zero. Sleeps are injected and recorded, so no test waits for a backoff.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import email.utils
import json
import logging
import random
import secrets
import ssl
import stat
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hark.config import MeetingSettings, Settings, WorkflowConfig
from hark.errors import ConfigError
from hark.logs import KeyValueFormatter
from hark.meetings.models import ActionItem, MeetingResult, TranscriptSegment
from hark.workflows import SSRFBlocked, Workflow, WorkflowError, build_workflows, run_workflows
from hark.workflows.delivery import RetryPolicy
from hark.workflows.jsonl import JsonlWorkflow
from hark.workflows.slack import SlackWorkflow
from hark.workflows.webhook import WebhookWorkflow
from tests.servers import ThreadedServer, free_port

TRANSCRIPT_SECRET = "the launch codename is BLUEBIRD"
SLACK_TOKEN = "XXXXslackTOKENdoNOTlog"
LOOPBACK = ["127.0.0.1"]
PRIVATE_URL = f"https://private-host.test/services/T/B/{SLACK_TOKEN}"


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def meeting(meeting_id: str = "m-1") -> MeetingResult:
    return MeetingResult(
        meeting_id=meeting_id,
        started_at=1_760_000_000.0,
        duration_s=754.0,
        transcript=[
            TranscriptSegment(start=0.0, end=3.0, text=f"Remember, {TRANSCRIPT_SECRET}.", speaker="S1"),
            TranscriptSegment(start=3.0, end=6.0, text="Ship it on Friday.", speaker="S2"),
        ],
        summary="Agreed to ship <v2> & celebrate.",
        decisions=["Ship v2 on Friday", "Keep the beta flag"],
        actions=[
            ActionItem(task="Write the release notes", owner="Ana", due="Thursday"),
            ActionItem(task="Book the room"),
        ],
        diarization="spectral-clustering",
    )


@dataclass
class Hit:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Answers POSTs from a script of (status, headers, body, delay); 200 once it runs out."""

    script: list[tuple[int, dict[str, str], bytes, float]] = field(default_factory=list)
    hits: list[Hit] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def then(
        self, status: int, headers: dict[str, str] | None = None, body: bytes = b"", delay: float = 0.0
    ) -> Receiver:
        self.script.append((status, headers or {}, body, delay))
        return self

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        with self.lock:
            self.hits.append(Hit(request.url.path, dict(request.headers), body))
            status, headers, content, delay = self.script.pop(0) if self.script else (200, {}, b"ok", 0.0)
        if delay:
            await asyncio.sleep(delay)
        return Response(content, status, headers=headers)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/{path:path}", self.handle, methods=["POST", "GET"])])


class Canary:
    """A bare TCP listener on one port of 127.0.0.1 and ::1 that counts accepted connections."""

    def __init__(self) -> None:
        self.connections = 0
        self.servers: list[asyncio.Server] = []
        self.port = 0
        self.hosts: list[str] = []

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        with contextlib.suppress(asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        writer.close()

    async def start(self, hosts: tuple[str, ...] = ("127.0.0.1", "::1"), port: int | None = None) -> Canary:
        for _ in range(20):
            self.port = port or free_port()
            try:
                for host in hosts:
                    try:
                        self.servers.append(await asyncio.start_server(self._on_connect, host, self.port))
                        self.hosts.append(host)
                    except OSError:
                        if host == hosts[0]:
                            raise
                return self
            except OSError:
                await self.stop()
                if port is not None:
                    raise
        raise RuntimeError("no free port for the canary")

    async def stop(self) -> None:
        for server in self.servers:
            server.close()
            await server.wait_closed()
        self.servers.clear()
        self.hosts.clear()


@pytest.fixture
async def canary() -> AsyncIterator[Canary]:
    started = await Canary().start()
    yield started
    await started.stop()


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, ThreadedServer]]:
    recv = Receiver()
    with ThreadedServer(recv.app()) as server:
        yield recv, server


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


class Clock:
    """Unix time that moves one second per reading, so each attempt's timestamp differs."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def webhook(url: str, secret: str, *, allow: list[str] | None = None, **kwargs: Any) -> WebhookWorkflow:
    kwargs.setdefault("sleep", Sleeps())
    kwargs.setdefault("policy", RetryPolicy(attempts=5, timeout=5.0))
    return WebhookWorkflow("hook", url, secret, allow=LOOPBACK if allow is None else allow, **kwargs)


def verify(secret: str, hit: Hit) -> Any:
    return Webhook(secret).verify(hit.body, hit.headers)


# ---------------------------------------------------------------- Standard Webhooks (RELIABILITY #20)


async def test_signed_webhook_verifies_with_the_reference_library(
    receiver: tuple[Receiver, ThreadedServer],
) -> None:
    recv, server = receiver
    secret = new_secret()
    flow = webhook(server.base_url + "/hooks/meetings", secret)
    await flow.run(meeting())

    assert len(recv.hits) == 1
    hit = recv.hits[0]
    payload = verify(secret, hit)
    assert payload["type"] == "meeting.completed"
    assert payload["data"]["meeting_id"] == "m-1"
    assert payload["data"]["actions"][0]["owner"] == "Ana"
    assert datetime.datetime.fromisoformat(payload["timestamp"].replace("Z", "+00:00"))
    assert hit.headers["webhook-id"].startswith("msg_")
    assert hit.headers["host"] == f"127.0.0.1:{server.port}"
    assert hit.headers["content-type"] == "application/json"
    assert hit.path == "/hooks/meetings"
    # A signature over other bytes, or with another key, does not verify.
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(hit.body.replace(b"m-1", b"m-2"), hit.headers)
    with pytest.raises(WebhookVerificationError):
        verify(new_secret(), hit)


async def test_host_header_keeps_the_name_while_the_connection_is_pinned(
    receiver: tuple[Receiver, ThreadedServer],
) -> None:
    recv, server = receiver
    secret = new_secret()
    await webhook(f"http://localhost:{server.port}/h", secret, allow=["localhost"]).run(meeting())
    assert recv.hits[0].headers["host"] == f"localhost:{server.port}"
    verify(secret, recv.hits[0])


async def test_500_500_200_is_delivered_on_the_third_attempt_with_one_id(
    receiver: tuple[Receiver, ThreadedServer], capsys: pytest.CaptureFixture[str]
) -> None:
    recv, server = receiver
    recv.then(500).then(503)
    secret = new_secret()
    sleeps = Sleeps()
    flow = webhook(server.base_url + "/h", secret, sleep=sleeps, random=lambda: 0.5, clock=Clock())
    outcomes = await run_workflows([flow], meeting())

    assert outcomes[0].ok and outcomes[0].attempts == 3
    assert len(recv.hits) == 3
    assert len({hit.headers["webhook-id"] for hit in recv.hits}) == 1
    stamps = [int(hit.headers["webhook-timestamp"]) for hit in recv.hits]
    assert stamps == sorted(stamps) and len(set(stamps)) == 3  # fresh per attempt
    assert len({hit.headers["webhook-signature"] for hit in recv.hits}) == 3
    for hit in recv.hits:
        verify(secret, hit)  # every attempt is independently valid
    assert len({hit.body for hit in recv.hits}) == 1  # the body itself never changes
    assert sleeps.delays == [0.5, 1.0]  # half of the 1 s, 2 s ceilings: growing
    assert flow.last_delivery is not None and flow.last_delivery.statuses == [500, 503, 200]
    with capsys.disabled():
        print(f"\n[webhook 500,503,200] attempts=3 delays_s={sleeps.delays} (random()=0.5)")


async def test_attempt_schedule_when_the_receiver_keeps_failing(
    receiver: tuple[Receiver, ThreadedServer], capsys: pytest.CaptureFixture[str]
) -> None:
    recv, server = receiver
    for _ in range(5):
        recv.then(500)
    sleeps = Sleeps()
    policy = RetryPolicy(attempts=5, timeout=5.0)
    flow = webhook(
        server.base_url + "/h", new_secret(), sleep=sleeps, random=random.Random(20).random, policy=policy
    )
    with pytest.raises(WorkflowError) as caught:
        await flow.run(meeting())
    assert caught.value.attempts == 5 and caught.value.retryable
    assert "gave up after 5 attempts: HTTP 500" in str(caught.value)
    assert len(recv.hits) == 5
    ceilings = [min(policy.backoff_max_s, policy.backoff_s * 2**n) for n in range(4)]
    assert len(sleeps.delays) == 4
    assert all(0 <= delay <= ceiling for delay, ceiling in zip(sleeps.delays, ceilings, strict=True))
    with capsys.disabled():
        print(
            f"\n[webhook 5x500] attempts=5 ceilings_s={ceilings} "
            f"full-jitter delays_s={[round(d, 3) for d in sleeps.delays]} "
            f"total_wait_s={sum(sleeps.delays):.3f}"
        )


async def test_timeouts_are_retried(receiver: tuple[Receiver, ThreadedServer]) -> None:
    recv, server = receiver
    recv.then(200, delay=2.0)  # answers after the attempt's 0.5 s budget
    sleeps = Sleeps()
    secret = new_secret()
    flow = webhook(server.base_url + "/h", secret, sleep=sleeps, policy=RetryPolicy(attempts=3, timeout=0.5))
    started = time.monotonic()
    await flow.run(meeting())
    assert time.monotonic() - started < 2.0
    assert len(recv.hits) == 2 and len(sleeps.delays) == 1
    assert recv.hits[0].headers["webhook-id"] == recv.hits[1].headers["webhook-id"]


async def test_connection_refused_is_retried_then_fails() -> None:
    sleeps = Sleeps()
    flow = webhook(
        f"http://127.0.0.1:{free_port()}/h", new_secret(), sleep=sleeps, policy=RetryPolicy(attempts=3)
    )
    with pytest.raises(WorkflowError, match="connection failed") as caught:
        await flow.run(meeting())
    assert caught.value.attempts == 3 and len(sleeps.delays) == 2


async def test_429_retry_after_is_honoured(receiver: tuple[Receiver, ThreadedServer]) -> None:
    recv, server = receiver
    recv.then(429, {"Retry-After": "7"}).then(503, {"Retry-After": "2"})
    sleeps = Sleeps()
    await webhook(server.base_url + "/h", new_secret(), sleep=sleeps, random=lambda: 0.0).run(meeting())
    assert sleeps.delays == [7.0, 2.0]  # the server's wait, not the (zero) jitter
    assert len(recv.hits) == 3


async def test_retry_after_as_an_http_date_or_garbage(receiver: tuple[Receiver, ThreadedServer]) -> None:
    recv, server = receiver
    recv.then(503, {"Retry-After": email.utils.formatdate(time.time() + 5, usegmt=True)})
    recv.then(503, {"Retry-After": "soon"})
    sleeps = Sleeps()
    await webhook(server.base_url + "/h", new_secret(), sleep=sleeps, random=lambda: 0.25).run(meeting())
    assert 3.0 <= sleeps.delays[0] <= 5.0  # the date, as seconds from now
    assert sleeps.delays[1] == 0.5  # unusable: backoff (0.25 of the 2 s ceiling)


async def test_retry_after_longer_than_the_cap_ends_the_delivery(
    receiver: tuple[Receiver, ThreadedServer],
) -> None:
    recv, server = receiver
    recv.then(429, {"Retry-After": "3600"})
    sleeps = Sleeps()
    with pytest.raises(WorkflowError, match="Retry-After") as caught:
        await webhook(server.base_url + "/h", new_secret(), sleep=sleeps).run(meeting())
    assert caught.value.attempts == 1 and sleeps.delays == [] and len(recv.hits) == 1


async def test_other_4xx_is_final(receiver: tuple[Receiver, ThreadedServer]) -> None:
    recv, server = receiver
    recv.then(400, body=b"bad_payload")
    with pytest.raises(WorkflowError, match=r"HTTP 400: bad_payload") as caught:
        await webhook(server.base_url + "/h", new_secret()).run(meeting())
    assert caught.value.attempts == 1 and not caught.value.retryable and len(recv.hits) == 1


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_redirects_are_failures_and_never_followed(
    status: int, receiver: tuple[Receiver, ThreadedServer], canary: Canary
) -> None:
    recv, server = receiver
    recv.then(status, {"Location": f"http://localhost:{canary.port}/latest/meta-data/"})
    with pytest.raises(WorkflowError, match=f"HTTP {status}.*not followed") as caught:
        # Even with loopback allow-listed, the redirect is not followed.
        await webhook(server.base_url + "/h", new_secret(), allow=["127.0.0.1", "localhost"]).run(meeting())
    assert caught.value.attempts == 1
    await asyncio.sleep(0.05)
    assert canary.connections == 0


# ---------------------------------------------------------------- SSRF (RELIABILITY #21)


def ssrf_targets(port: int) -> list[str]:
    return [
        f"http://127.0.0.1:{port}/",
        f"http://[::1]:{port}/",
        f"http://0x7f000001:{port}/",
        f"http://2130706433:{port}/",
        f"http://017700000001:{port}/",
        f"http://127.1:{port}/",
        f"http://[::ffff:127.0.0.1]:{port}/",
        f"http://localhost:{port}/",
        f"https://localhost:{port}/",
        f"http://[64:ff9b::7f00:1]:{port}/",
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        f"http://[::ffff:169.254.169.254]:{port}/",
        f"http://[::ffff:10.0.0.1]:{port}/",
        f"http://0.0.0.0:{port}/",
    ]


async def test_no_request_reaches_a_canary_that_is_not_allow_listed(
    canary: Canary, capsys: pytest.CaptureFixture[str]
) -> None:
    refused = 0
    for url in ssrf_targets(canary.port):
        for allow in ([], ["10.0.0.0/8"], ["example.com"]):
            sleeps = Sleeps()
            flows: list[WebhookWorkflow | SlackWorkflow] = [
                webhook(url, new_secret(), allow=allow, sleep=sleeps),
                SlackWorkflow("slack", url, allow=allow, sleep=sleeps),
            ]
            for flow in flows:
                if "10.0.0.1" in url and "10.0.0.0/8" in allow:
                    continue  # allowed on purpose (the allow-list test covers it); nothing listens there
                with pytest.raises(SSRFBlocked) as caught:
                    await flow.run(meeting())
                assert caught.value.attempts == 1  # refused at once, never retried
                assert url not in str(caught.value)
                refused += 1
            assert sleeps.delays == []
    await asyncio.sleep(0.05)
    assert canary.connections == 0
    with capsys.disabled():
        print(
            f"\n[ssrf] refused={refused} targets={len(ssrf_targets(canary.port))} "
            f"canary({'+'.join(canary.hosts)}) connections={canary.connections}"
        )


async def test_the_canary_counts_when_allow_listed(canary: Canary) -> None:
    # Control: the same canary is reached once it is allow-listed, so the zero above means something.
    await webhook(f"http://127.0.0.1:{canary.port}/", new_secret(), allow=["127.0.0.1"]).run(meeting())
    await asyncio.sleep(0.05)
    assert canary.connections == 1
    if "::1" in canary.hosts:
        await webhook(f"http://[::1]:{canary.port}/", new_secret(), allow=["::1"]).run(meeting())
        await asyncio.sleep(0.05)
        assert canary.connections == 2
    # Allowing 127.0.0.1 does not allow ::1, nor the metadata address.
    for url in (f"http://[::1]:{canary.port}/", "http://169.254.169.254/"):
        with pytest.raises(SSRFBlocked):
            await webhook(url, new_secret(), allow=["127.0.0.1"]).run(meeting())


async def test_dns_rebinding_between_attempts_is_caught_at_send_time(
    receiver: tuple[Receiver, ThreadedServer],
) -> None:
    """The name first resolves to the allow-listed receiver (which fails with 500), then to
    127.0.0.2, where a canary listens on the same port: the second attempt is refused before it
    connects. The first attempt reaching the receiver at all shows that the connection went to
    the checked address: nothing else can resolve ``rebind.test``."""
    recv, server = receiver
    recv.then(500)
    canary = await Canary().start(("127.0.0.2",), port=server.port)
    answers = [["127.0.0.1"], ["127.0.0.2"]]
    lookups: list[str] = []

    async def resolver(host: str, port: int) -> list[str]:
        lookups.append(host)
        return answers.pop(0) if answers else ["127.0.0.2"]

    try:
        sleeps = Sleeps()
        flow = webhook(f"http://rebind.test:{server.port}/h", new_secret(), sleep=sleeps, resolver=resolver)
        with pytest.raises(SSRFBlocked) as caught:
            await flow.run(meeting())
        assert caught.value.attempts == 2
        assert lookups == ["rebind.test", "rebind.test"]  # checked again before the second attempt
        assert len(recv.hits) == 1 and recv.hits[0].headers["host"] == f"rebind.test:{server.port}"
        await asyncio.sleep(0.05)
        assert canary.connections == 0
    finally:
        await canary.stop()


# ---------------------------------------------------------------- HTTPS: pinned IP, real name for SNI


def _tls_files(directory: Path, name: str) -> tuple[Path, Path, Path]:
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hark test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_path, cert_path, key_path = directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return ca_path, cert_path, key_path


class TLSServer(ThreadedServer):
    def __init__(self, app: Any, certfile: Path, keyfile: Path) -> None:
        super().__init__(app)
        self.server = uvicorn.Server(
            uvicorn.Config(
                app,
                host="127.0.0.1",
                port=self.port,
                log_level="critical",
                ssl_certfile=str(certfile),
                ssl_keyfile=str(keyfile),
            )
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)


async def test_https_uses_the_name_for_sni_and_certificate_checks(tmp_path: Path) -> None:
    ca_path, cert_path, key_path = _tls_files(tmp_path, "hooks.example.test")
    recv = Receiver()
    context = ssl.create_default_context(cafile=str(ca_path))

    async def resolver(host: str, port: int) -> list[str]:
        return ["127.0.0.1"] if host == "hooks.example.test" else []

    secret = new_secret()
    with TLSServer(recv.app(), cert_path, key_path) as server:
        url = f"https://hooks.example.test:{server.port}/h"
        await webhook(url, secret, resolver=resolver, verify=context).run(meeting())
        assert recv.hits[0].headers["host"] == f"hooks.example.test:{server.port}"
        verify(secret, recv.hits[0])

        # The same server under a name its certificate does not carry: refused, not retried.
        async def other(host: str, port: int) -> list[str]:
            return ["127.0.0.1"]

        sleeps = Sleeps()
        flow = webhook(
            f"https://other.example.test:{server.port}/h",
            secret,
            resolver=other,
            verify=context,
            sleep=sleeps,
        )
        with pytest.raises(WorkflowError, match="TLS") as caught:
            await flow.run(meeting())
        assert caught.value.attempts == 1 and sleeps.delays == []
        assert len(recv.hits) == 1


# ---------------------------------------------------------------- Slack


async def test_slack_payload_shape(receiver: tuple[Receiver, ThreadedServer]) -> None:
    recv, server = receiver
    flow = SlackWorkflow("slack", f"{server.base_url}/services/T000/B000/{SLACK_TOKEN}", allow=LOOPBACK)
    await flow.run(meeting())
    hit = recv.hits[0]
    assert hit.headers["content-type"].startswith("application/json")
    payload = json.loads(hit.body)
    assert set(payload) == {"text", "blocks"}
    assert payload["text"].startswith("Meeting summary: Agreed to ship &lt;v2&gt; &amp; celebrate.")
    kinds = [block["type"] for block in payload["blocks"]]
    assert kinds == ["header", "section", "section", "section", "context"]
    texts = [block.get("text", {}).get("text", "") for block in payload["blocks"]]
    assert "Agreed to ship &lt;v2&gt; &amp; celebrate." in texts[1]
    assert texts[2] == "*Decisions*\n• Ship v2 on Friday\n• Keep the beta flag"
    assert texts[3] == "*Action items*\n• Write the release notes (Ana, due Thursday)\n• Book the room"
    context = payload["blocks"][4]["elements"][0]["text"]
    assert "13 min" in context and "2 speakers" in context and "m-1" in context
    assert TRANSCRIPT_SECRET not in hit.body.decode()  # the transcript is not posted


async def test_slack_without_summary_or_lists(receiver: tuple[Receiver, ThreadedServer]) -> None:
    recv, server = receiver
    bare = MeetingResult(meeting_id="m-2", started_at=0.0, duration_s=20.0, summary_error="no LLM")
    await SlackWorkflow("slack", server.base_url + "/s", allow=LOOPBACK).run(bare)
    payload = json.loads(recv.hits[0].body)
    assert [block["type"] for block in payload["blocks"]] == ["header", "section", "context"]
    assert "No summary" in payload["blocks"][1]["text"]["text"]


async def test_slack_429_retry_after_is_honoured(receiver: tuple[Receiver, ThreadedServer]) -> None:
    recv, server = receiver
    recv.then(429, {"Retry-After": "3"}, b"rate_limited").then(429, {"Retry-After": "1"})
    sleeps = Sleeps()
    flow = SlackWorkflow("slack", server.base_url + "/s", allow=LOOPBACK, sleep=sleeps, random=lambda: 0.0)
    outcomes = await run_workflows([flow], meeting())
    assert outcomes[0].ok and outcomes[0].attempts == 3
    assert sleeps.delays == [3.0, 1.0]
    assert len(recv.hits) == 3 and len({hit.body for hit in recv.hits}) == 1


async def test_slack_error_word_is_reported_and_final(receiver: tuple[Receiver, ThreadedServer]) -> None:
    recv, server = receiver
    recv.then(404, body=b"no_service")
    flow = SlackWorkflow("slack", f"{server.base_url}/services/T/B/{SLACK_TOKEN}", allow=LOOPBACK)
    with pytest.raises(WorkflowError) as caught:
        await flow.run(meeting())
    assert "HTTP 404: no_service" in str(caught.value) and SLACK_TOKEN not in str(caught.value)
    assert caught.value.attempts == 1


# ---------------------------------------------------------------- JSONL


async def test_jsonl_appends_valid_lines(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "meetings.jsonl"
    flow = JsonlWorkflow("log", path)
    await asyncio.gather(*(flow.run(meeting(f"m-{i}")) for i in range(20)))
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b"" and len(lines) == 21
    records = [json.loads(line) for line in lines[:-1]]
    assert sorted(record["data"]["meeting_id"] for record in records) == sorted(f"m-{i}" for i in range(20))
    assert all(record["type"] == "meeting.completed" for record in records)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert all(line.isascii() for line in lines)  # \u2028 and friends cannot split a line


async def test_jsonl_recovers_from_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "meetings.jsonl"
    path.write_bytes(b'{"type": "meeting.completed", "da')  # a crash mid-write
    await JsonlWorkflow("log", path).run(meeting("after-crash"))
    lines = path.read_text().splitlines()
    assert len(lines) == 2
    assert json.loads(lines[1])["data"]["meeting_id"] == "after-crash"


async def test_jsonl_failure_is_a_workflow_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(WorkflowError, match="cannot append") as caught:
        await JsonlWorkflow("log", blocker / "sub" / "m.jsonl").run(meeting())
    assert str(tmp_path) not in str(caught.value)


# ---------------------------------------------------------------- running them together


class Exploding:
    name = "exploding"

    async def run(self, result: MeetingResult) -> None:
        raise RuntimeError(f"boom at http://internal.example/{SLACK_TOKEN}")


class Hanging:
    name = "hanging"

    async def run(self, result: MeetingResult) -> None:
        await asyncio.Event().wait()


@pytest.fixture
def workflow_log() -> Iterator[list[str]]:
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Collect()
    handler.setFormatter(KeyValueFormatter("%(levelname)s %(name)s: %(message)s"))
    log = logging.getLogger("hark.workflows")
    previous = log.level
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    yield lines
    log.removeHandler(handler)
    log.setLevel(previous)


async def test_one_failing_workflow_does_not_stop_the_others(
    receiver: tuple[Receiver, ThreadedServer], tmp_path: Path, workflow_log: list[str]
) -> None:
    recv, server = receiver
    failing = Receiver()
    for _ in range(2):
        failing.then(500)
    secret = new_secret()
    with ThreadedServer(failing.app()) as bad:
        flows: list[Workflow] = [
            webhook(f"{bad.base_url}/h?token={SLACK_TOKEN}", secret, policy=RetryPolicy(attempts=2)),
            Exploding(),
            Hanging(),
            SlackWorkflow("slack", f"{server.base_url}/services/T/B/{SLACK_TOKEN}", allow=LOOPBACK),
            JsonlWorkflow("log", tmp_path / "m.jsonl"),
            webhook("http://169.254.169.254/latest/meta-data/", secret),
        ]
        outcomes = await run_workflows(flows, meeting(), limit_s=2.0)

    by_name = {o.name: o for o in outcomes}
    assert [o.name for o in outcomes] == ["hook", "exploding", "hanging", "slack", "log", "hook"]
    assert [o.ok for o in outcomes] == [False, False, False, True, True, False]
    assert outcomes[0].attempts == 2 and "HTTP 500" in (outcomes[0].error or "")
    assert by_name["exploding"].error == "unexpected RuntimeError"
    assert "within 2 s" in (by_name["hanging"].error or "")
    assert outcomes[5].attempts == 1 and "link-local" in (outcomes[5].error or "")
    assert len(recv.hits) == 1 and len(failing.hits) == 2
    assert json.loads((tmp_path / "m.jsonl").read_text())["data"]["meeting_id"] == "m-1"

    # Logged: one line per outcome plus the retry, with no URL, secret or transcript text.
    text = "\n".join(workflow_log)
    assert text.count("workflow delivered") == 2 and text.count("workflow failed") == 4
    assert "workflow attempt failed; retrying" in text
    for forbidden in (
        SLACK_TOKEN,
        secret,
        secret[6:],
        TRANSCRIPT_SECRET,
        "BLUEBIRD",
        "Agreed to ship",
        "http://",
        "169.254.169.254",
        "127.0.0.1",
        "internal.example",
        "/services/",
    ):
        assert forbidden not in text, forbidden


async def test_build_workflows_from_settings(
    receiver: tuple[Receiver, ThreadedServer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recv, server = receiver
    secret = new_secret()
    monkeypatch.setenv("TEST_HOOK_URL", server.base_url + "/env")
    monkeypatch.setenv("TEST_HOOK_SECRET", secret)
    settings = Settings(
        meetings=MeetingSettings(
            workflows=[
                WorkflowConfig(
                    kind="webhook", url_env="TEST_HOOK_URL", secret_env="TEST_HOOK_SECRET", attempts=1
                ),
                WorkflowConfig(
                    kind="webhook", url=server.base_url + "/inline", secret_env="TEST_HOOK_SECRET"
                ),
                WorkflowConfig(
                    kind="slack", name="team", url=f"{server.base_url}/services/T/B/{SLACK_TOKEN}"
                ),
                WorkflowConfig(kind="jsonl", path=tmp_path / "log.jsonl"),
            ],
            ssrf_allow=["127.0.0.1"],
        )
    )
    flows = build_workflows(settings)
    assert [flow.name for flow in flows] == ["webhook", "webhook-2", "team", "jsonl"]
    assert SLACK_TOKEN not in repr(flows)
    outcomes = await run_workflows(flows, meeting())
    assert all(outcome.ok for outcome in outcomes)
    assert sorted(hit.path for hit in recv.hits) == ["/env", "/inline", f"/services/T/B/{SLACK_TOKEN}"]
    for hit in recv.hits:
        if hit.path in ("/env", "/inline"):
            verify(secret, hit)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (WorkflowConfig(kind="webhook", url=PRIVATE_URL), "signing secret"),
        (
            WorkflowConfig(kind="webhook", url=PRIVATE_URL, secret_env="HARK_TEST_UNSET_SECRET"),
            "not set",
        ),
        (WorkflowConfig(kind="webhook", url_env="HARK_TEST_UNSET_URL", secret_env="X"), "needs a URL"),
        (
            WorkflowConfig(kind="slack", url="ftp" + PRIVATE_URL[5:]),
            "only http",
        ),
        (WorkflowConfig(kind="slack"), "needs a URL"),
        (WorkflowConfig(kind="jsonl"), "needs a path"),
    ],
)
def test_bad_workflow_config_names_the_problem_not_the_url(
    config: WorkflowConfig, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HARK_TEST_UNSET_SECRET", raising=False)
    monkeypatch.delenv("HARK_TEST_UNSET_URL", raising=False)
    with pytest.raises(ConfigError, match=message) as caught:
        build_workflows(Settings(meetings=MeetingSettings(workflows=[config])))
    assert "meetings.workflows[0]" in str(caught.value)
    assert "private-host" not in str(caught.value) and SLACK_TOKEN not in str(caught.value)


def test_bad_webhook_secret_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARK_TEST_BAD_SECRET", "whsec_not base64!!")
    config = WorkflowConfig(kind="webhook", url="https://h.test/x", secret_env="HARK_TEST_BAD_SECRET")
    with pytest.raises(ConfigError, match="base64"):
        build_workflows(Settings(meetings=MeetingSettings(workflows=[config])))


def test_the_built_in_kinds_and_plug_ins_satisfy_the_interface() -> None:
    flows = (
        Exploding(),
        Hanging(),
        JsonlWorkflow("x", Path("x")),
        SlackWorkflow("s", "https://h.test/"),
        WebhookWorkflow("w", "https://h.test/", new_secret()),
    )
    for flow in flows:
        assert isinstance(flow, Workflow)
