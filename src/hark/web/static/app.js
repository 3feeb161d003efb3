// hark web client: microphone → hark (WebRTC, or WebSocket when WebRTC is not offered) →
// transcripts and spoken replies. Capture, playback, barge-in and the protocol live in the shared
// client core (clients/js, compiled into ./vendor/hark-client/); this file is the page's UI.

import { fetchClientSecret, HarkClient } from "./vendor/hark-client/index.js";
import { formatMs, TranscriptView } from "./transcript.js";
import { $, sharedElements, showConnection, showState, showTalkButton, talkMeter, toaster } from "./common.js";

const MAX_EVENTS = 300;

const STATE_LABELS = {
  idle: "Idle",
  connecting: "Connecting…",
  listening: "Listening",
  thinking: "Thinking",
  speaking: "Speaking",
};

// The page's CSP (script-src 'self') refuses Blob-URL worklets: load the generated files.
const WORKLETS = {
  capture: new URL("./vendor/hark-client/capture-worklet.js", import.meta.url).href,
  playback: new URL("./vendor/hark-client/playback-worklet.js", import.meta.url).href,
};

const TRANSPORT_LABELS = { webrtc: "WebRTC", websocket: "WebSocket" };

/** A single-use client secret from this hark, or null when it mints none for us (keys required,
 * or an older server): the WebSocket on loopback needs none. */
async function pageToken() {
  try {
    return (await fetchClientSecret("/v1/realtime/client_secrets")).value;
  } catch {
    return null;
  }
}

// ---- testing hook: live, plain data ------------------------------------------------------

const hark = {
  state: "idle",
  connection: "offline",
  transport: null, // "webrtc" | "websocket" once connected
  heard: [], // client-measured latency per reply: {responseId, heardMs, server}
  running: false,
  events: [], // types of the last MAX_EVENTS server events
  sentEvents: [], // types of the last client events (audio appends excluded)
  eventCounts: {},
  playing: false, // reply audio coming out now
  playedMs: 0, // reply audio played, all items
  playedMsByItem: {},
  receivedAudioBytes: 0,
  sentAudioBytes: 0,
  truncations: [],
  transcripts: [],
  latency: [],
  errors: [],
  llmStatus: null,
  session: null,
  sampleRate: 0,
};
window.hark = hark;

// ---- elements -------------------------------------------------------------------------------

const ui = {
  ...sharedElements(),
  modeChip: $("mode-chip"),
  banner: $("llm-banner"),
  bannerMessage: $("llm-banner-message"),
  bannerSetting: $("llm-banner-setting"),
  bannerClose: $("banner-close"),
  copy: $("copy-setting"),
  conversation: $("conversation"),
  transcript: $("transcript"),
  latency: $("latency"),
  transport: $("transport"),
  clear: $("clear"),
};

const transcript = new TranscriptView(ui.conversation, ui.transcript, hark.transcripts);
const meter = talkMeter(ui);
const toast = toaster(ui.toasts);

let session = null;
let bannerDismissed = false;

// ---- small UI helpers ---------------------------------------------------------------------

function setState(state) {
  if (!STATE_LABELS[state]) return;
  hark.state = state;
  // The server is "idle" between turns: with the microphone open that means ready to listen.
  showState(ui, meter, { state, label: state === "idle" && session ? "Ready" : STATE_LABELS[state] });
}

function setConnection(status) {
  showConnection(ui, hark, status);
}

function setRunning(mode) {
  // mode: "stopped" | "starting" | "running"
  hark.running = mode === "running";
  showTalkButton(ui, mode);
  document.body.classList.toggle("is-running", mode !== "stopped");
}

/** turn: {responseId, heardMs (client: end of your speech → first reply sample played), server}. */
function showLatency(turn) {
  const values = { heard_ms: turn.heardMs, ...(turn.server || {}) };
  for (const dd of ui.latency.querySelectorAll("dd[data-key]")) {
    const value = values[dd.dataset.key];
    dd.textContent = formatMs(typeof value === "number" ? value : null);
  }
  ui.latency.classList.add("has-data");
}

function showTransport(kind) {
  hark.transport = kind;
  ui.transport.hidden = !kind;
  ui.transport.dataset.transport = kind || "";
  ui.transport.textContent = kind ? TRANSPORT_LABELS[kind] || kind : "";
  ui.transport.title = kind === "websocket" ? "Connected over WebSocket (this server did not offer WebRTC)" : "Connected over WebRTC";
}

function showLlmStatus(status) {
  hark.llmStatus = status;
  const echo = status.mode === "echo";
  ui.modeChip.hidden = false;
  ui.modeChip.dataset.mode = echo ? "echo" : "llm";
  ui.modeChip.textContent = echo ? "Echo mode" : "LLM";
  ui.modeChip.title = status.message || "";
  if (echo) {
    ui.bannerMessage.textContent =
      status.message || "No language model is configured, so hark repeats what it hears.";
    ui.bannerSetting.textContent = status.setting || "";
    ui.bannerSetting.parentElement.hidden = !status.setting;
    ui.banner.hidden = bannerDismissed;
  } else {
    ui.banner.hidden = true;
  }
}

async function copySetting() {
  const text = ui.bannerSetting.textContent;
  let ok = false;
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      ok = true;
    }
  } catch {
    ok = false;
  }
  if (!ok) {
    const range = document.createRange();
    range.selectNodeContents(ui.bannerSetting);
    const sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
    try {
      ok = document.execCommand("copy");
    } catch {
      ok = false;
    }
  }
  if (ok) {
    ui.copy.classList.add("is-done");
    ui.copy.querySelector("use").setAttribute("href", "#i-check");
    setTimeout(() => {
      ui.copy.classList.remove("is-done");
      ui.copy.querySelector("use").setAttribute("href", "#i-copy");
    }, 1600);
  }
}

function updateClear() {
  ui.clear.hidden = transcript.isEmpty;
}

// ---- session lifecycle ----------------------------------------------------------------------

async function start() {
  if (session) return;
  const client = new HarkClient({ getToken: pageToken, worklets: WORKLETS });
  const s = { client, stopped: false, serverState: false, openResponses: new Set() };
  session = s;
  setRunning("starting");
  setConnection("connecting");
  setState("connecting");

  client.on("event", (event) => onServerEvent(s, event));
  client.on("level", (rms) => {
    if (s !== session) return;
    meter.push(rms);
    hark.sentAudioBytes = client.sentAudioBytes;
  });
  client.on("playback", (progress) => onPlayback(s, progress));
  client.on("sent", (event) => {
    if (s === session && event.type !== "input_audio_buffer.append") record(hark.sentEvents, event.type);
  });
  client.on("truncated", ({ itemId, audioEndMs }) => {
    if (s !== session) return;
    hark.truncations.push({ item_id: itemId, audio_end_ms: audioEndMs });
    hark.playedMsByItem[itemId] = audioEndMs;
    transcript.assistantInterrupted(itemId, audioEndMs);
  });
  client.on("transport", (kind) => {
    if (s === session) showTransport(kind);
  });
  client.on("latency", (turn) => {
    if (s !== session) return;
    const i = hark.heard.findIndex((t) => turn.responseId && t.responseId === turn.responseId);
    if (i >= 0) hark.heard[i] = { ...hark.heard[i], ...turn, heardMs: turn.heardMs ?? hark.heard[i].heardMs };
    else hark.heard.push(turn);
    showLatency(i >= 0 ? hark.heard[i] : turn);
  });
  client.on("status", (status) => {
    if (s !== session) return;
    if (status === "reconnecting") setConnection("connecting");
  });
  client.on("error", (err) => {
    if (s !== session || s.stopped) return;
    if (err.code === "connection_lost") {
      toast(err.message, { detail: "Press Start to reconnect." });
      stop({ connection: "lost" });
    }
  });

  try {
    // connect() creates the AudioContext synchronously, inside this click.
    await client.connect();
  } catch (err) {
    if (s.stopped) return;
    const unreachable = err && err.code === "server_unreachable";
    toast(err && err.message ? err.message : String(err), {
      detail: unreachable ? "Check that hark is running, then press Start again." : "",
    });
    await stop({ connection: unreachable ? "error" : "offline" });
    return;
  }
  if (s.stopped) return;
  hark.sampleRate = client.sampleRate;
  setRunning("running");
  meter.setActive(true);
  if (!s.serverState) setState("idle");
}

async function stop({ connection = "offline" } = {}) {
  const s = session;
  if (!s) return;
  session = null;
  s.stopped = true;
  meter.setActive(false);
  setRunning("stopped");
  setState("idle");
  setConnection(connection);
  showTransport(null);
  await s.client.disconnect();
}

function onPlayback(s, progress) {
  if (s !== session) return;
  hark.playing = progress.playing;
  if (progress.item) {
    hark.playedMsByItem[progress.item] = Math.floor(progress.ms);
    let total = 0;
    for (const ms of Object.values(hark.playedMsByItem)) total += ms;
    hark.playedMs = total;
  } else if (progress.playing) {
    hark.playedMs = Math.max(hark.playedMs, 1); // WebRTC: the track is sounding
  }
  if (!s.serverState) {
    if (progress.playing) setState("speaking");
    else if (hark.state === "speaking" && s.openResponses.size === 0) setState("idle");
  }
}

function record(list, type) {
  list.push(type);
  if (list.length > MAX_EVENTS) list.splice(0, list.length - MAX_EVENTS);
}

function onServerEvent(s, event) {
  if (s !== session) return;
  const type = event.type;
  record(hark.events, type);
  hark.eventCounts[type] = (hark.eventCounts[type] || 0) + 1;

  switch (type) {
    case "session.created":
    case "session.updated":
      hark.session = event.session || null;
      setConnection("connected");
      break;

    case "hark.llm_status":
      showLlmStatus(event);
      break;

    case "hark.state":
      s.serverState = true;
      setState(event.state);
      break;

    case "hark.latency":
      hark.latency.push(event);
      transcript.latency(event);
      break;

    case "input_audio_buffer.speech_started":
      if (event.item_id) transcript.userStarted(event.item_id);
      if (!s.serverState) setState("listening");
      break;

    case "input_audio_buffer.speech_stopped":
      if (event.item_id) transcript.userStopped(event.item_id);
      break;

    case "input_audio_buffer.committed":
      if (!s.serverState) setState("thinking");
      break;

    case "conversation.item.input_audio_transcription.delta": {
      const text =
        typeof event.transcript === "string"
          ? event.transcript
          : ((transcript.entries.get(event.item_id) || { record: { text: "" } }).record.text || "") +
            (event.delta || "");
      transcript.userPartial(event.item_id, text);
      break;
    }

    case "conversation.item.input_audio_transcription.completed":
      transcript.userFinal(event.item_id, event.transcript);
      break;

    case "conversation.item.input_audio_transcription.failed":
      transcript.userFailed(event.item_id, event.error && event.error.message);
      break;

    case "response.created":
      if (event.response && event.response.id) s.openResponses.add(event.response.id);
      if (!s.serverState) setState("thinking");
      break;

    case "response.output_item.added": {
      const item = event.item || {};
      if (item.type === "message" && item.role === "assistant" && item.id) {
        transcript.assistant(item.id, event.response_id);
      }
      break;
    }

    case "response.output_audio.delta":
      hark.receivedAudioBytes = s.client.receivedAudioBytes;
      break;

    case "response.output_audio_transcript.delta":
    case "response.audio_transcript.delta":
    case "response.output_text.delta":
    case "response.text.delta":
      if (event.item_id) transcript.assistantDelta(event.item_id, event.response_id, event.delta || "");
      break;

    case "response.output_audio_transcript.done":
    case "response.audio_transcript.done":
    case "response.output_text.done":
    case "response.text.done":
      if (event.item_id) {
        transcript.assistantDone(event.item_id, event.response_id, event.transcript ?? event.text);
      }
      break;

    case "response.done": {
      const response = event.response || {};
      s.openResponses.delete(response.id);
      const details = response.status_details || {};
      const detail = (details.error && details.error.message) || details.reason || "";
      transcript.responseDone(response.id, response.status, detail);
      if (response.status === "failed") toast(detail ? `The reply failed: ${detail}` : "The reply failed.");
      if (!s.serverState && !s.client.playing && hark.state !== "listening") setState("idle");
      break;
    }

    case "conversation.item.truncated":
      // Over WebRTC the server cuts the reply at the samples that played (the page sends no
      // truncate); over the WebSocket this confirms the page's own truncate, already shown.
      if (hark.transport === "webrtc") {
        hark.truncations.push({ item_id: event.item_id, audio_end_ms: event.audio_end_ms });
        transcript.assistantInterrupted(event.item_id, event.audio_end_ms);
      }
      break;

    case "error": {
      const error = event.error || {};
      hark.errors.push(error);
      console.warn("hark: server error", error);
      toast(error.message || "The server reported an error.", {
        detail: [error.type, error.code].filter(Boolean).join(" · "),
      });
      break;
    }

    default:
      break;
  }
  updateClear();
}

// ---- wiring ---------------------------------------------------------------------------------

ui.talk.addEventListener("click", () => {
  if (session) stop();
  else start();
});

ui.bannerClose.addEventListener("click", () => {
  bannerDismissed = true;
  ui.banner.hidden = true;
});

ui.copy.addEventListener("click", copySetting);

ui.clear.addEventListener("click", () => {
  transcript.clear();
  updateClear();
});

window.addEventListener("pagehide", () => {
  stop();
});

window.addEventListener("unhandledrejection", (event) => {
  const reason = event.reason;
  toast(reason && reason.message ? reason.message : String(reason));
});

window
  .matchMedia("(prefers-color-scheme: dark)")
  .addEventListener("change", () => setTimeout(() => meter.refreshColors(), 0));

setState("idle");
setConnection("offline");
setRunning("stopped");
document.documentElement.classList.add("js-ready");
