// The OpenAI Agents SDK for JavaScript (RealtimeSession over its WebSocket transport) holding a
// three-turn, tool-using conversation with hark. Run by tests/conformance/test_agents_js.py:
//
//   node conversation.mjs WS_URL SPEECH_PCM_PATH
//
// Turn 1 is typed and makes the model call the client tool get_weather; turn 2 is spoken
// (PCM16 mono 24 kHz from espeak-ng, paced like a microphone); then the app drops turn 2 from its
// history (updateHistory) and types turn 3. It prints one JSON line: what the
// client saw (errors, tool calls, audio bytes, its history) and every raw server event, so the
// Python side makes the assertions.
import { readFileSync } from 'node:fs';

import { RealtimeAgent, RealtimeSession, tool } from '@openai/agents-realtime';
import { z } from 'zod';

const [url, speechPath] = process.argv.slice(2);
const started = Date.now();
const elapsed = () => (Date.now() - started) / 1000;

const toolCalls = [];
const getWeather = tool({
  name: 'get_weather',
  description: 'The current weather in a city.',
  parameters: z.object({ city: z.string() }),
  execute: async ({ city }) => {
    toolCalls.push({ city });
    return `Sunny and 21 degrees in ${city}`;
  },
});

const agent = new RealtimeAgent({
  name: 'Assistant',
  instructions: 'You are a helpful voice assistant. Keep answers short.',
  tools: [getWeather],
});
const session = new RealtimeSession(agent, { transport: 'websocket', model: 'hark' });

const errors = [];
const serverEvents = [];
const turns = [];
let audioBytes = 0;
let toolEnds = 0;
session.on('error', (e) => errors.push(describe(e)));
// Kept as tests/conformance/script.py `received` keeps them: arrival time in `_at`, no audio.
session.on('transport_event', (event) => {
  const { delta, ...rest } = event;
  serverEvents.push({ ...(event.type === 'response.output_audio.delta' ? rest : event), _at: elapsed() });
});
session.on('audio', (event) => {
  audioBytes += event.data.byteLength;
});
session.on('agent_tool_end', () => {
  toolEnds += 1;
});

function describe(e) {
  const error = e?.error?.error ?? e?.error ?? e;
  try {
    return JSON.parse(JSON.stringify(error));
  } catch {
    return String(error);
  }
}

async function until(what, predicate, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const responsesDone = () => serverEvents.filter((e) => e.type === 'response.done').length;

async function turn(name, send, responses, timeoutMs) {
  const before = responsesDone();
  const audioBefore = audioBytes;
  const t0 = Date.now();
  await send();
  await until(`${name}: ${responses} response.done`, () => responsesDone() >= before + responses, timeoutMs);
  turns.push({ name, ms: Date.now() - t0, audio_bytes: audioBytes - audioBefore });
}

let failure = null;
try {
  await session.connect({ apiKey: 'none', url });
  await until('session.updated', () => serverEvents.some((e) => e.type === 'session.updated'), 15000);

  // Turn 1, typed: the model calls get_weather, the SDK answers it and asks for the reply.
  await turn('text+tool', () => session.sendMessage('What is the weather in Paris?'), 2, 60000);
  await until('the tool to finish', () => toolEnds >= 1, 5000);

  // Turn 2, spoken, paced in 40 ms chunks; the server's VAD ends the turn.
  const speech = readFileSync(speechPath);
  const chunk = 24000 * 2 * 0.04;
  await turn(
    'spoken',
    async () => {
      for (let offset = 0; offset < speech.length; offset += chunk) {
        const piece = speech.subarray(offset, Math.min(offset + chunk, speech.length));
        session.sendAudio(piece.buffer.slice(piece.byteOffset, piece.byteOffset + piece.byteLength));
        await new Promise((resolve) => setTimeout(resolve, 40));
      }
    },
    1,
    60000,
  );
  // Let the SDK's own follow-ups (conversation.item.retrieve after the transcript) come back.
  await new Promise((resolve) => setTimeout(resolve, 1000));

  // The app trims its history (the spoken exchange goes: two deletes), then a typed turn.
  const deleted = () => serverEvents.filter((e) => e.type === 'conversation.item.deleted').length;
  session.updateHistory((history) => history.slice(0, -2));
  await until('two conversation.item.deleted', () => deleted() >= 2, 10000);
  await turn('text', () => session.sendMessage('Tell me a joke.'), 1, 60000);
} catch (e) {
  failure = String(e?.stack ?? e);
}

const history = session.history.map((item) => ({ id: item.itemId, type: item.type, role: item.role ?? null }));
session.close();
process.stdout.write(
  `${JSON.stringify({
    failure,
    errors,
    tool_calls: toolCalls,
    audio_bytes: audioBytes,
    turns,
    history,
    server_events: serverEvents,
    seconds: elapsed(),
  })}\n`,
);
process.exit(0);
