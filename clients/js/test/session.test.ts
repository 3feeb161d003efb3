import assert from "node:assert/strict";
import { test } from "node:test";
import { HarkError } from "../src/errors.js";
import { LatencyTracker } from "../src/latency.js";
import { ReconnectPolicy, ResumeToken } from "../src/reconnect.js";
import { fetchClientSecret, parseClientSecret } from "../src/token.js";

function fakeFetch(status: number, body: unknown): typeof fetch {
  return (async () => new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } })) as typeof fetch;
}

test("fetchClientSecret returns the single-use secret, sending the key only when given", async () => {
  let seen: RequestInit | undefined;
  const f = (async (_url: string, init?: RequestInit) => {
    seen = init;
    return new Response(JSON.stringify({ value: "ek_1", expires_at: 1900000000, session: { type: "realtime" } }), { status: 200 });
  }) as typeof fetch;
  const secret = await fetchClientSecret("http://h/v1/realtime/client_secrets", { apiKey: "sk", fetch: f, ttlSeconds: 60 });
  assert.deepEqual(secret, { value: "ek_1", expiresAt: 1900000000 });
  assert.equal((seen?.headers as Record<string, string>)["Authorization"], "Bearer sk");
  assert.deepEqual(JSON.parse(String(seen?.body)).expires_after, { anchor: "created_at", seconds: 60 });
  assert.deepEqual(parseClientSecret({ client_secret: { value: "x", expires_at: 5 } }), { value: "x", expiresAt: 5 });
});

test("a refused key, a dead server and an empty answer are told apart", async () => {
  await assert.rejects(fetchClientSecret("http://h/t", { fetch: fakeFetch(401, { error: { message: "bad key" } }) }), (e: HarkError) => {
    assert.equal(e.code, "token_refused");
    assert.match(e.message, /bad key/);
    assert.equal(e.retryable, false);
    return true;
  });
  const down = (async () => {
    throw new TypeError("fetch failed");
  }) as typeof fetch;
  await assert.rejects(fetchClientSecret("http://h:1/t", { fetch: down }), (e: HarkError) => e.code === "server_unreachable" && e.retryable);
  await assert.rejects(fetchClientSecret("http://h/t", { fetch: fakeFetch(200, {}) }), (e: HarkError) => e.code === "token_refused");
  await assert.rejects(fetchClientSecret("http://h/t", { fetch: fakeFetch(503, {}) }), (e: HarkError) => e.code === "server_unreachable" && e.retryable);
});

test("reconnect backs off, gives up, and never retries what cannot be mended", () => {
  const policy = new ReconnectPolicy({ maxAttempts: 3, baseDelayMs: 100, maxDelayMs: 250, jitter: 0 });
  const drop = { code: 1006, reason: "", expected: false };
  assert.deepEqual([policy.next(drop), policy.next(drop), policy.next(drop), policy.next(drop)], [100, 200, 250, null]);
  policy.reset();
  assert.equal(policy.next(drop), 100);
  assert.equal(policy.next({ ...drop, expected: true }), null);
  assert.equal(policy.next({ ...drop, code: 1008 }), null);
  const jittered = new ReconnectPolicy({ baseDelayMs: 1000, jitter: 0.5 }, () => 0);
  assert.equal(jittered.next(drop), 500);
});

test("the resume token is single use and dies at its expiry", () => {
  let t = 1000;
  const resume = new ResumeToken(() => t);
  assert.equal(resume.take(), null);
  resume.update("rt_1", 1060);
  assert.ok(resume.available);
  assert.equal(resume.take(), "rt_1");
  assert.equal(resume.take(), null);
  resume.update("rt_2", 1060);
  t = 1061;
  assert.equal(resume.available, false);
  assert.equal(resume.take(), null);
});

test("latency runs from the last voiced chunk to the first sample played, not from the server's VAD", () => {
  const tracker = new LatencyTracker(0.01);
  tracker.speechStarted();
  tracker.level(0.2, 1000);
  tracker.level(0.15, 1040);
  tracker.level(0.001, 1080); // silence after the voice
  tracker.speechStopped(1500); // the server decided after its silence window
  tracker.responseCreated("r1");
  assert.ok(tracker.waiting);
  assert.deepEqual(tracker.played(1800), { responseId: "r1", heardMs: 760, server: null });
  assert.equal(tracker.played(1900), null, "only the first sample counts");
  const server = { end_of_turn_ms: 400, stt_ms: 100, llm_ttft_ms: 1, tts_ttfb_ms: 50, voice_to_voice_ms: 210 };
  assert.deepEqual(tracker.server("r1", server), { responseId: "r1", heardMs: 760, server });
  // Barge-in before any audio: the turn is dropped, nothing is reported.
  tracker.speechStopped(3000);
  tracker.speechStarted();
  assert.equal(tracker.played(3100), null);
});
