// hark web client: microphone → /v1/realtime → transcripts and spoken replies.

import { AudioEngine } from "./audio.js";
import { pcm16FromBase64, RealtimeClient, realtimeUrl } from "./realtime.js";
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

const SESSION_UPDATE = {
  type: "session.update",
  session: {
    type: "realtime",
    output_modalities: ["audio"],
    audio: {
      input: {
        format: { type: "audio/pcm", rate: 24000 },
        turn_detection: { type: "server_vad" },
      },
      output: { format: { type: "audio/pcm", rate: 24000 } },
    },
  },
};

// ---- testing hook: live, plain data ------------------------------------------------------

const hark = {
  state: "idle",
  connection: "offline",
  running: false,
  events: [], // types of the last MAX_EVENTS server events
  sentEvents: [], // types of the last client events (audio appends excluded)
  eventCounts: {},
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

function showLatency(event) {
  for (const dd of ui.latency.querySelectorAll("dd[data-key]")) {
    const value = event[dd.dataset.key];
    dd.textContent = formatMs(typeof value === "number" ? value : null);
  }
  ui.latency.classList.add("has-data");
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
  const s = {
    client: null,
    audio: null,
    stopped: false,
    streaming: false,
    serverState: false, // the server sends hark.state; otherwise the state is derived here
    openResponses: new Set(),
    dropResponses: new Set(), // responses interrupted by barge-in: their audio is ignored
    dropItems: new Set(),
    audioItems: new Set(), // assistant items that have sent audio
  };
  session = s;
  setRunning("starting");
  setConnection("connecting");
  setState("connecting");

  s.audio = new AudioEngine({
    onChunk: (pcm) => onMicChunk(s, pcm),
    onLevel: (rms) => {
      if (s === session) meter.push(rms);
    },
    onPlayback: (progress) => onPlayback(s, progress),
  });
  s.client = new RealtimeClient(realtimeUrl(), {
    onEvent: (event) => onServerEvent(s, event),
    onClose: (info) => onClose(s, info),
  });

  // audio.start() creates the AudioContext synchronously, inside this click.
  const results = await Promise.allSettled([s.audio.start(), s.client.connect()]);
  if (s.stopped) return;
  const failed = results.find((r) => r.status === "rejected");
  if (failed) {
    const connectFailed = results[1].status === "rejected";
    const reason = failed.reason && failed.reason.message ? failed.reason.message : String(failed.reason);
    toast(reason, { detail: connectFailed ? "Check that hark is running, then press Start again." : "" });
    await stop({ connection: connectFailed ? "error" : "offline" });
    return;
  }
  hark.sampleRate = s.audio.sampleRate;
  s.client.send(SESSION_UPDATE);
  record(hark.sentEvents, SESSION_UPDATE.type);
  s.streaming = true;
  setRunning("running");
  meter.setActive(true);
  if (!s.serverState) setState("idle");
}

async function stop({ connection = "offline" } = {}) {
  const s = session;
  if (!s) return;
  session = null;
  s.stopped = true;
  s.streaming = false;
  s.client.close();
  meter.setActive(false);
  setRunning("stopped");
  setState("idle");
  setConnection(connection);
  await s.audio.stop();
}

function onClose(s, info) {
  if (s !== session) return;
  if (!info.expected) {
    const why = info.reason ? `: ${info.reason}` : info.code && info.code !== 1000 ? ` (code ${info.code})` : "";
    toast(`The server closed the connection${why}.`, { detail: "Press Start to reconnect." });
  }
  stop({ connection: info.expected ? "offline" : "lost" });
}

function onMicChunk(s, pcm) {
  if (!s.streaming || s !== session) return;
  const bytes = pcm.byteLength;
  if (s.client.appendAudio(pcm)) hark.sentAudioBytes += bytes;
}

function onPlayback(s, progress) {
  if (s !== session) return;
  if (progress.item) {
    hark.playedMsByItem[progress.item] = Math.floor(progress.ms);
    let total = 0;
    for (const ms of Object.values(hark.playedMsByItem)) total += ms;
    hark.playedMs = total;
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

function send(s, event) {
  if (s.client.send(event)) record(hark.sentEvents, event.type);
}

/** The user started speaking: silence the reply at once, then tell the server what was heard. */
function bargeIn(s) {
  for (const id of s.openResponses) s.dropResponses.add(id);
  const audio = s.audio;
  const pending = [...s.audioItems].filter((item) => audio.enqueuedMs(item) > audio.playedMs(item) + 0.5);
  if (pending.length === 0 && !audio.busy) return;
  for (const item of pending) s.dropItems.add(item);
  audio.flush().then(({ item: current, ms }) => {
    if (s !== session) return;
    for (const item of pending) {
      const played = item === current ? ms : audio.playedMs(item);
      const audioEndMs = Math.max(0, Math.min(Math.floor(played), Math.floor(audio.enqueuedMs(item))));
      send(s, { type: "conversation.item.truncate", item_id: item, content_index: 0, audio_end_ms: audioEndMs });
      hark.truncations.push({ item_id: item, audio_end_ms: audioEndMs });
      hark.playedMsByItem[item] = audioEndMs;
      transcript.assistantInterrupted(item, audioEndMs);
      s.audioItems.delete(item);
    }
  });
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
      showLatency(event);
      transcript.latency(event);
      break;

    case "input_audio_buffer.speech_started":
      bargeIn(s);
      if (event.item_id) transcript.userStarted(event.item_id);
      if (!s.serverState) setState("listening");
      break;

    case "hark.output_resumed":
      // Not an interruption after all ("mhm", a cough): the server sends again what was dropped.
      s.dropResponses.delete(event.response_id);
      if (event.item_id) s.dropItems.delete(event.item_id);
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
    case "response.audio.delta": {
      if (typeof event.delta !== "string" || !event.item_id) break;
      const pcm = pcm16FromBase64(event.delta);
      hark.receivedAudioBytes += pcm.byteLength;
      if (s.dropResponses.has(event.response_id) || s.dropItems.has(event.item_id)) break;
      s.audioItems.add(event.item_id);
      s.audio.enqueue(event.item_id, pcm);
      break;
    }

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
      if (!s.serverState && !s.audio.busy && hark.state !== "listening") setState("idle");
      break;
    }

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
