import assert from "node:assert/strict";
import { test } from "node:test";
import { CaptureChunker, PlaybackQueue } from "../src/dsp.js";
import { captureWorkletSource, playbackWorkletSource } from "../src/worklets.js";

function sine(rate: number, n: number, freq: number, amp: number, offset = 0): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => amp * Math.sin((2 * Math.PI * freq * (i + offset)) / rate));
}

for (const rate of [48000, 44100, 16000, 24000]) {
  test(`capture resamples ${rate} Hz to 24 kHz PCM16 in 40 ms chunks`, () => {
    const chunker = new CaptureChunker(rate, 24000, 40);
    const input = sine(rate, rate, 440, 0.5);
    const chunks = [];
    for (let i = 0; i < input.length; i += 128) chunks.push(...chunker.push([input.subarray(i, i + 128)]));
    assert.ok(chunks.length >= 23);
    assert.ok(chunks.every((c) => c.pcm.length === 960));
    let worst = 0;
    let k = 0;
    for (const c of chunks) {
      for (const s of c.pcm) {
        worst = Math.max(worst, Math.abs(s - 0.5 * 32767 * Math.sin((2 * Math.PI * 440 * k) / 24000)));
        k++;
      }
      assert.ok(Math.abs(c.rms - 0.5 / Math.SQRT2) < 0.03 * (0.5 / Math.SQRT2));
    }
    assert.ok(worst < 0.01 * 32767, `off by ${worst}`);
  });
}

test("capture gives the same samples whatever the block size, and downmixes stereo", () => {
  const input = sine(48000, 9600, 300, 0.4);
  const a = new CaptureChunker(48000, 24000, 40);
  const b = new CaptureChunker(48000, 24000, 40);
  const outA = a.push([input]).flatMap((c) => Array.from(c.pcm));
  const outB: number[] = [];
  for (let i = 0; i < input.length; i += 97) outB.push(...b.push([input.subarray(i, i + 97)]).flatMap((c) => Array.from(c.pcm)));
  assert.deepEqual(outB.slice(0, outA.length), outA);
  const stereo = new CaptureChunker(24000, 24000, 10);
  const [chunk] = stereo.push([new Float32Array(241).fill(0.5), new Float32Array(241).fill(-0.5)]);
  assert.ok(chunk && chunk.pcm.every((s) => s === 0));
});

test("playback is gapless across chunks, resampled, and flush empties it at once", () => {
  const q = new PlaybackQueue(24000, 48000, 40, 80);
  const ramp = Int16Array.from({ length: 2400 }, (_, i) => i * 10);
  q.push("a", ramp.subarray(0, 1000));
  q.push("a", ramp.subarray(1000));
  const out = new Float32Array(128);
  const played: number[] = [];
  for (let i = 0; i < 30; i++) {
    q.render(out);
    played.push(...out);
  }
  assert.ok(q.playing);
  // A ramp at 24 kHz read at 48 kHz: every step is half a source step, no jumps at chunk edges.
  const steps = played.slice(1, 3000).map((v, i) => v - played[i]!);
  assert.ok(steps.every((d) => Math.abs(d - 5 / 32768) < 1e-6), "gap or jump in playback");
  assert.equal(q.item, "a");
  const flushed = q.flush();
  assert.equal(flushed.item, "a");
  assert.ok(flushed.samples > 1400 && flushed.samples < 2400);
  assert.ok(flushed.droppedSamples > 0 && flushed.samples + flushed.droppedSamples <= 2400);
  q.render(out);
  assert.ok(out.every((v) => v === 0), "audio after flush");
  assert.equal(q.playing, false);
});

test("playback waits for a little audio before it starts", () => {
  const q = new PlaybackQueue(24000, 24000, 40, 80);
  q.push("a", new Int16Array(240).fill(1000)); // 10 ms < 40 ms prebuffer
  const out = new Float32Array(128);
  q.render(out);
  assert.equal(q.playing, false);
  q.push("a", new Int16Array(960).fill(1000));
  q.render(out);
  assert.equal(q.playing, true);
});

test("the worklet sources run the same cores inside a worklet scope", () => {
  const registered = new Map<string, new (o: unknown) => { process(i: unknown, o: unknown): boolean; port: FakePort }>();
  class FakePort {
    sent: unknown[] = [];
    onmessage: ((e: { data: unknown }) => void) | null = null;
    postMessage(m: unknown): void {
      this.sent.push(m);
    }
  }
  class AudioWorkletProcessor {
    port = new FakePort();
  }
  for (const source of [captureWorkletSource(), playbackWorkletSource()]) {
    new Function("AudioWorkletProcessor", "registerProcessor", "sampleRate", source)(
      AudioWorkletProcessor,
      (name: string, cls: never) => registered.set(name, cls),
      48000,
    );
  }
  const Capture = registered.get("hark-capture")!;
  const capture = new Capture({ processorOptions: { targetRate: 24000, chunkMs: 40 } });
  for (let i = 0; i < 20; i++) capture.process([[sine(48000, 128, 440, 0.5, i * 128)]], [[new Float32Array(128)]]);
  assert.equal(capture.port.sent.length, 1);
  const Playback = registered.get("hark-playback")!;
  const player = new Playback({ processorOptions: { sourceRate: 24000 } });
  player.port.onmessage!({ data: { type: "push", itemId: "x", pcm: new Int16Array(4800).fill(8000).buffer } });
  const out = new Float32Array(128);
  player.process([], [[out]]);
  assert.ok(out.some((v) => v > 0.2));
  player.port.onmessage!({ data: { type: "flush", id: 7 } });
  assert.ok(player.port.sent.some((m) => (m as { type: string; id?: number }).type === "flushed"));
});
