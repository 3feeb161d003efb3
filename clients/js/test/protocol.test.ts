import assert from "node:assert/strict";
import { test } from "node:test";
import { is, parseServerEvent, pcm16FromBase64, toBase64, voiceSessionUpdate } from "../src/events.js";
import { initialConversation, reduceConversation, withLatency } from "../src/conversation.js";
import { callsUrl, realtimeUrl, webSocketProtocols } from "../src/transport.js";

test("parseServerEvent keeps events and refuses anything else", () => {
  const e = parseServerEvent('{"type":"hark.state","state":"listening","event_id":"event_3"}');
  assert.ok(e && is(e, "hark.state"));
  assert.equal(e.state, "listening");
  assert.equal(parseServerEvent("not json"), null);
  assert.equal(parseServerEvent("[1,2]"), null);
  assert.equal(parseServerEvent('{"no":"type"}'), null);
  assert.equal(parseServerEvent(new ArrayBuffer(4)), null);
  // An event hark may add later still comes through, typed loosely.
  assert.deepEqual(parseServerEvent('{"type":"hark.future","x":1}'), { type: "hark.future", x: 1 });
});

test("PCM16 survives base64 both ways, little-endian", () => {
  const pcm = new Int16Array([0, 1, -1, 32767, -32768, 1234]);
  const b64 = toBase64(new Uint8Array(pcm.buffer));
  assert.deepEqual(Array.from(pcm16FromBase64(b64)), Array.from(pcm));
  assert.equal(toBase64(new Uint8Array([1, 0])), "AQA=");
  const big = new Int16Array(100_000).map((_, i) => (i * 7) % 65536 - 32768);
  assert.deepEqual(pcm16FromBase64(toBase64(new Uint8Array(big.buffer))), big);
});

test("URLs and subprotocols carry the token outside the URL", () => {
  assert.equal(realtimeUrl("https://h.example:8443/app"), "wss://h.example:8443/v1/realtime?model=hark&hark_events=1");
  assert.equal(realtimeUrl("http://127.0.0.1:8000", false), "ws://127.0.0.1:8000/v1/realtime?model=hark");
  assert.equal(callsUrl("http://127.0.0.1:8000"), "http://127.0.0.1:8000/v1/realtime/calls?hark_events=1");
  assert.deepEqual(webSocketProtocols("tok"), ["realtime", "openai-insecure-api-key.tok"]);
  assert.deepEqual(webSocketProtocols(null), []);
  const update = voiceSessionUpdate(24000, { instructions: "be brief" }) as unknown as { session: Record<string, unknown> };
  assert.equal(update.session["instructions"], "be brief");
});

test("the conversation folds a voice turn into state, transcripts and latency", () => {
  const events = [
    { type: "hark.state", state: "listening" },
    { type: "input_audio_buffer.speech_started", item_id: "u1" },
    { type: "conversation.item.input_audio_transcription.delta", item_id: "u1", delta: "", transcript: "hello" },
    { type: "conversation.item.input_audio_transcription.delta", item_id: "u1", delta: "", transcript: "hello there" },
    { type: "hark.state", state: "thinking" },
    { type: "conversation.item.input_audio_transcription.completed", item_id: "u1", transcript: "Hello there." },
    { type: "response.output_audio_transcript.delta", response_id: "r1", item_id: "a1", delta: "Hi" },
    { type: "response.output_audio_transcript.delta", response_id: "r1", item_id: "a1", delta: " you" },
    { type: "hark.state", state: "speaking" },
    { type: "conversation.item.truncated", item_id: "a1", audio_end_ms: 420 },
  ];
  let s = initialConversation;
  const states: string[] = [];
  for (const e of events) {
    s = reduceConversation(s, e as never);
    states.push(s.state);
  }
  assert.deepEqual([...new Set(states)], ["LISTENING", "THINKING", "SPEAKING"]);
  assert.deepEqual(
    s.transcripts.map((t) => [t.role, t.text, t.final]),
    [
      ["user", "Hello there.", true],
      ["assistant", "Hi you", false],
    ],
  );
  assert.equal(s.transcripts[1]!.interrupted, true);
  assert.equal(s.transcripts[1]!.heardMs, 420);
  // Unknown events leave the snapshot as it was.
  assert.equal(reduceConversation(s, { type: "rate_limits.updated" }), s);

  const server = { end_of_turn_ms: 300, stt_ms: 120, llm_ttft_ms: 10, tts_ttfb_ms: 40, voice_to_voice_ms: 207 };
  s = withLatency(s, { responseId: "r1", heardMs: 640, server: null });
  s = withLatency(s, { responseId: "r1", heardMs: null, server });
  assert.deepEqual(s.latency, [{ responseId: "r1", heardMs: 640, server }]);
});
