// hark meetings page: microphone → /v1/meetings/stream → live transcript, then the summary,
// decisions and action items. Audio goes up as binary PCM16 mono frames at 16 kHz.

import { captureWorkletUrl, connectCapture, requestMicrophone } from "./audio.js";
import { $, sharedElements, showConnection, showState, showTalkButton, talkMeter, toaster } from "./common.js";

const RATE = 16000;
const CHUNK_MS = 40;
const SPEAKER_HUES = [252, 152, 24, 200, 330, 88, 280, 0];

const STATE_LABELS = {
  idle: "Idle",
  connecting: "Connecting…",
  listening: "Recording",
  thinking: "Processing",
  speaking: "Reading summary",
  done: "Done",
};

// ---- testing hook: live, plain data ------------------------------------------------------

const meeting = {
  state: "idle",
  connection: "offline",
  meetingId: null,
  events: [],
  partials: [],
  result: null,
  errors: [],
  sentAudioBytes: 0,
};
window.harkMeeting = meeting;

// ---- elements -------------------------------------------------------------------------------

const ui = {
  ...sharedElements(),
  scroller: $("scroller"),
  empty: $("empty"),
  meeting: $("meeting"),
  segments: $("segments"),
  title: $("meeting-title"),
  speakers: $("speakers"),
  processing: $("processing"),
  results: $("results"),
  summary: $("summary"),
  summaryNote: $("summary-note"),
  decisions: $("decisions"),
  decisionsCount: $("decisions-count"),
  actions: $("actions"),
  actionsCount: $("actions-count"),
  resultMeta: $("result-meta"),
  downloadTxt: $("download-txt"),
  downloadJson: $("download-json"),
  remove: $("delete"),
  clock: $("clock"),
  stats: $("stats"),
};

const meter = talkMeter(ui);
const toast = toaster(ui.toasts);

let session = null;
let clockTimer = 0;

// ---- small helpers ----------------------------------------------------------------------------

function clock(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const mm = String(Math.floor(s / 60) % 60).padStart(2, "0");
  const ss = String(s % 60).padStart(2, "0");
  return s >= 3600 ? `${Math.floor(s / 3600)}:${mm}:${ss}` : `${mm}:${ss}`;
}

function setState(state) {
  meeting.state = state;
  showState(ui, meter, { state, indicator: state === "done" ? "idle" : state, label: STATE_LABELS[state] || state });
}

function setConnection(status) {
  showConnection(ui, meeting, status);
}

function setRunning(mode) {
  // mode: "stopped" | "starting" | "running" | "stopping"
  showTalkButton(ui, mode);
}

function setStat(key, value) {
  const dd = ui.stats.querySelector(`dd[data-key="${key}"]`);
  if (dd) dd.textContent = value;
  ui.stats.classList.add("has-data");
}

function scrollToEnd() {
  const el = ui.scroller;
  if (el.scrollHeight - el.scrollTop - el.clientHeight < 160) el.scrollTop = el.scrollHeight;
}

// ---- transcript view --------------------------------------------------------------------------

function speakerHue(label) {
  const n = Number(String(label || "").replace(/\D/g, "")) || 0;
  return SPEAKER_HUES[(Math.max(1, n) - 1) % SPEAKER_HUES.length];
}

function speakerChip(label) {
  const chip = document.createElement("span");
  chip.className = "who";
  if (label) {
    chip.style.setProperty("--hue", String(speakerHue(label)));
    chip.textContent = label.replace(/^S(\d+)$/, "Speaker $1");
  } else {
    chip.classList.add("who--unknown");
    chip.textContent = "…";
  }
  return chip;
}

function renderSpeakers(labels) {
  ui.speakers.replaceChildren(...labels.map((label) => speakerChip(label)));
  setStat("speakers", labels.length ? String(labels.length) : "—");
}

function segmentNode(index) {
  let node = ui.segments.querySelector(`li[data-segment="${index}"]`);
  if (node) return node;
  node = document.createElement("li");
  node.className = "seg";
  node.dataset.segment = String(index);
  const meta = document.createElement("div");
  meta.className = "seg__meta";
  const time = document.createElement("span");
  time.className = "seg__time";
  meta.append(speakerChip(null), time);
  const text = document.createElement("p");
  text.className = "seg__text";
  node.append(meta, text);
  // Segments can finish out of order: keep them sorted by index.
  const later = [...ui.segments.children].find((li) => Number(li.dataset.segment) > index);
  ui.segments.insertBefore(node, later || null);
  return node;
}

function showSegment(index, { start, text, speaker, final }) {
  const node = segmentNode(index);
  node.dataset.final = String(Boolean(final));
  node.querySelector(".seg__time").textContent = clock(start);
  node.querySelector(".seg__text").textContent = text;
  node.querySelector(".who").replaceWith(speakerChip(speaker));
}

function showPartial(event) {
  meeting.partials.push(event);
  ui.meeting.hidden = false;
  ui.empty.hidden = true;
  showSegment(event.segment, event);
  const labels = [...new Set(meeting.partials.filter((p) => p.speaker).map((p) => p.speaker))];
  renderSpeakers(labels);
  setStat("segments", String(ui.segments.querySelectorAll('li[data-final="true"]').length));
  scrollToEnd();
}

function showResult(result) {
  meeting.result = result;
  ui.meeting.hidden = false;
  ui.empty.hidden = true;
  ui.segments.replaceChildren();
  result.transcript.forEach((segment, index) => showSegment(index, { ...segment, final: true }));
  renderSpeakers(result.speakers || []);
  setStat("segments", String(result.transcript.length));
  setStat("duration", clock(result.duration_s));

  ui.summary.textContent = result.summary || "";
  ui.summary.hidden = !result.summary;
  ui.summaryNote.hidden = Boolean(result.summary);
  ui.summaryNote.textContent = result.summary
    ? ""
    : `No summary: ${result.summary_error || "the language model gave none"}.`;

  ui.decisions.replaceChildren(
    ...result.decisions.map((text) => {
      const li = document.createElement("li");
      li.textContent = text;
      return li;
    }),
  );
  ui.decisionsCount.textContent = result.decisions.length ? String(result.decisions.length) : "";
  if (!result.decisions.length) ui.decisions.append(emptyItem("No decisions recorded."));

  ui.actions.replaceChildren(
    ...result.actions.map((action) => {
      const li = document.createElement("li");
      li.className = "action";
      const task = document.createElement("span");
      task.className = "action__task";
      task.textContent = action.task;
      const tags = document.createElement("span");
      tags.className = "action__tags";
      if (action.owner) tags.append(tag(action.owner.replace(/^S(\d+)$/, "Speaker $1"), "owner"));
      if (action.due) tags.append(tag(action.due, "due"));
      li.append(task, tags);
      return li;
    }),
  );
  ui.actionsCount.textContent = result.actions.length ? String(result.actions.length) : "";
  if (!result.actions.length) ui.actions.append(emptyItem("No action items."));

  const how = { clustering: "voice clustering", pyannote: "pyannote", "single-speaker": "one speaker" };
  ui.resultMeta.textContent = `${result.meeting_id} · speakers by ${how[result.diarization] || result.diarization}`;
  ui.title.textContent = "Transcript";
  ui.results.hidden = false;
  ui.processing.hidden = true;
  // The summary is what one wants to see now: bring it into view.
  requestAnimationFrame(() => ui.results.scrollIntoView({ block: "start", behavior: "smooth" }));
}

function emptyItem(text) {
  const li = document.createElement("li");
  li.className = "muted";
  li.textContent = text;
  return li;
}

function tag(text, kind) {
  const span = document.createElement("span");
  span.className = `tag tag--${kind}`;
  span.textContent = text;
  return span;
}

// ---- downloads and delete --------------------------------------------------------------------

function download(name, type, text) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

function transcriptText(result) {
  const lines = [`Meeting ${result.meeting_id}`, `Recorded ${new Date(result.started_at * 1000).toISOString()}`, ""];
  for (const s of result.transcript) lines.push(`[${clock(s.start)}] ${s.speaker || "Speaker"}: ${s.text}`);
  if (result.summary) lines.push("", "Summary", result.summary);
  if (result.decisions.length) lines.push("", "Decisions", ...result.decisions.map((d) => `- ${d}`));
  if (result.actions.length) {
    lines.push("", "Action items");
    for (const a of result.actions) {
      const extra = [a.owner && `owner: ${a.owner}`, a.due && `due: ${a.due}`].filter(Boolean).join(", ");
      lines.push(`- ${a.task}${extra ? ` (${extra})` : ""}`);
    }
  }
  return lines.join("\n") + "\n";
}

async function deleteMeeting() {
  const result = meeting.result;
  if (!result) return;
  try {
    const response = await fetch(`/v1/meetings/${encodeURIComponent(result.meeting_id)}`, { method: "DELETE" });
    if (!response.ok && response.status !== 404) {
      const body = await response.json().catch(() => ({}));
      throw new Error((body.error && body.error.message) || `HTTP ${response.status}`);
    }
  } catch (err) {
    toast(`The meeting could not be deleted: ${err.message || err}`);
    return;
  }
  meeting.result = null;
  meeting.partials = [];
  ui.segments.replaceChildren();
  ui.results.hidden = true;
  ui.meeting.hidden = true;
  ui.empty.hidden = false;
  renderSpeakers([]);
  for (const dd of ui.stats.querySelectorAll("dd")) dd.textContent = "—";
  ui.clock.textContent = "00:00";
  setState("idle");
  toast("The recording and its transcript were deleted.", { kind: "info" });
}

// ---- microphone ----------------------------------------------------------------------------------

async function openMicrophone(s) {
  if (!window.isSecureContext || !navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    throw new Error("The browser only allows microphone access on HTTPS or on localhost.");
  }
  const ctx = new AudioContext({ latencyHint: "interactive" });
  s.ctx = ctx;
  const resumed = ctx.resume();
  const stream = await requestMicrophone();
  s.stream = stream;
  await ctx.audioWorklet.addModule(captureWorkletUrl);
  const { capture } = connectCapture(ctx, stream, {
    targetRate: RATE,
    chunkMs: CHUNK_MS,
    onChunk: (msg) => {
      if (s !== session) return;
      meter.push(msg.rms);
      if (s.recording && s.ws && s.ws.readyState === WebSocket.OPEN) {
        s.ws.send(msg.pcm);
        meeting.sentAudioBytes += msg.pcm.byteLength;
      }
    },
  });
  s.capture = capture;
  await resumed;
}

async function closeMicrophone(s) {
  if (s.capture) {
    s.capture.port.postMessage({ type: "stop" });
    s.capture.port.onmessage = null;
  }
  if (s.stream) for (const track of s.stream.getTracks()) track.stop();
  const ctx = s.ctx;
  s.capture = s.stream = s.ctx = null;
  meter.setActive(false);
  if (ctx && ctx.state !== "closed") {
    try {
      await ctx.close();
    } catch {
      /* already closed */
    }
  }
}

// ---- the meeting session ------------------------------------------------------------------------

function wsUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/v1/meetings/stream`;
}

async function start() {
  if (session) return;
  const s = { ws: null, recording: false, startedAt: 0, stoppedAt: 0, summaryAudio: [] };
  session = s;
  meeting.result = null;
  meeting.partials = [];
  meeting.meetingId = null;
  ui.segments.replaceChildren();
  ui.results.hidden = true;
  ui.processing.hidden = true;
  renderSpeakers([]);
  for (const dd of ui.stats.querySelectorAll("dd")) dd.textContent = "—";
  setRunning("starting");
  setState("connecting");
  setConnection("connecting");
  try {
    await openMicrophone(s);
    await connect(s);
  } catch (err) {
    if (s === session) await fail(s, err && err.message ? err.message : String(err));
    return;
  }
}

function connect(s) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(wsUrl());
    ws.binaryType = "arraybuffer";
    s.ws = ws;
    let opened = false;
    ws.onopen = () => {
      opened = true;
      setConnection("connected");
      ws.send(JSON.stringify({ type: "start", sample_rate: RATE }));
      resolve();
    };
    ws.onerror = () => {
      if (!opened) reject(new Error("Could not reach the hark server."));
    };
    ws.onclose = () => onClose(s, opened);
    ws.onmessage = (event) => {
      if (typeof event.data === "string") onEvent(s, JSON.parse(event.data));
    };
  });
}

function onEvent(s, event) {
  if (s !== session) return;
  meeting.events.push(event.type);
  if (meeting.events.length > 300) meeting.events.shift();
  switch (event.type) {
    case "started":
      meeting.meetingId = event.meeting_id;
      s.speakSummary = Boolean(event.speak_summary);
      s.recording = true;
      s.startedAt = performance.now();
      setRunning("running");
      setState("listening");
      meter.setActive(true);
      ui.meeting.hidden = false;
      ui.empty.hidden = true;
      ui.title.textContent = "Live transcript";
      clockTimer = setInterval(() => {
        const elapsed = clock((performance.now() - s.startedAt) / 1000);
        ui.clock.textContent = elapsed;
        setStat("duration", elapsed);
      }, 250);
      if (!event.summary) {
        toast("No language model is configured: you will get the transcript without a summary.", {
          kind: "info",
          detail: "Set HARK_LLM_BASE_URL to get summaries and action items.",
        });
      }
      break;
    case "partial_transcript":
      showPartial(event);
      break;
    case "notice":
      toast(event.message, { kind: "info" });
      break;
    case "stopped":
      stopCapture(s);
      s.stoppedAt = s.stoppedAt || performance.now();
      ui.clock.textContent = clock(event.duration_s);
      setStat("duration", clock(event.duration_s));
      setRunning("stopping");
      setState("thinking");
      ui.processing.hidden = false;
      scrollToEnd();
      break;
    case "final":
      setStat("result", `${((performance.now() - s.stoppedAt) / 1000).toFixed(1)} s`);
      showResult(event);
      setState("done");
      setRunning("stopped");
      // With speak_summary the summary audio follows; the socket closes after it.
      if (!(s.speakSummary && event.summary)) finish(s);
      break;
    case "summary_audio.delta":
      s.summaryAudio.push(event.audio);
      setState("speaking");
      break;
    case "summary_audio.done":
      playSummary(s.summaryAudio, event.sample_rate).finally(() => {
        if (meeting.state === "speaking") setState("done");
      });
      s.summaryAudio = [];
      finish(s);
      break;
    case "error":
      meeting.errors.push(event.error);
      toast(event.error.message || "The server reported an error.", { detail: event.error.code });
      if (event.error.code === "tts_failed") finish(s);
      if (!s.recording && !meeting.result && meeting.state === "connecting") fail(s, null);
      break;
    default:
      break;
  }
}

function stopCapture(s) {
  s.recording = false;
  clearInterval(clockTimer);
  closeMicrophone(s);
}

function stop() {
  const s = session;
  if (!s) return;
  if (!s.ws || s.ws.readyState !== WebSocket.OPEN || !s.recording) {
    fail(s, null);
    return;
  }
  s.stoppedAt = performance.now();
  stopCapture(s);
  s.ws.send(JSON.stringify({ type: "stop" }));
  setRunning("stopping");
  setState("thinking");
}

function finish(s) {
  // The meeting is done; the socket may serve another, but the page opens a fresh one each time.
  if (s.ws && s.ws.readyState === WebSocket.OPEN) s.ws.close(1000);
  if (session === s) session = null;
}

async function fail(s, message) {
  if (message) toast(message);
  stopCapture(s);
  if (s.ws && s.ws.readyState <= WebSocket.OPEN) s.ws.close();
  if (session === s) session = null;
  setRunning("stopped");
  setState(meeting.result ? "done" : "idle");
  if (meeting.connection !== "error") setConnection("offline");
}

function onClose(s, opened) {
  if (s !== session) {
    setConnection("offline");
    return;
  }
  const waiting = meeting.meetingId && !meeting.result;
  setConnection(opened ? "lost" : "error");
  if (waiting) {
    // The server finishes the meeting anyway: fetch the result when it is ready.
    toast("The connection was lost; the meeting is still being processed.", { kind: "info" });
    pollResult(meeting.meetingId);
  } else if (!opened) {
    toast("Could not reach the hark server.", { detail: "Check that hark is running, then press Start again." });
  }
  fail(s, null);
}

async function pollResult(id) {
  for (let attempt = 0; attempt < 120; attempt++) {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    try {
      const response = await fetch(`/v1/meetings/${encodeURIComponent(id)}`);
      if (response.status === 200) {
        showResult(await response.json());
        setState("done");
        return;
      }
      if (response.status !== 202) return;
    } catch {
      /* the server may be restarting: try again */
    }
  }
}

async function playSummary(chunks, rate) {
  if (!chunks.length) return;
  const parts = chunks.map((b64) => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)));
  const bytes = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    bytes.set(part, offset);
    offset += part.length;
  }
  const samples = new Int16Array(bytes.buffer, 0, bytes.length >> 1);
  const ctx = new AudioContext();
  const buffer = ctx.createBuffer(1, samples.length, rate);
  const channel = buffer.getChannelData(0);
  for (let i = 0; i < samples.length; i++) channel[i] = samples[i] / 32768;
  const source = ctx.createBufferSource();
  source.buffer = buffer;
  source.connect(ctx.destination);
  await new Promise((resolve) => {
    source.onended = resolve;
    source.start();
  });
  await ctx.close();
}

// ---- wiring ---------------------------------------------------------------------------------------

ui.talk.addEventListener("click", () => {
  if (ui.talk.dataset.running === "true") stop();
  else if (ui.talk.dataset.running === "false") start();
});
ui.downloadTxt.addEventListener("click", () => {
  if (meeting.result) download(`${meeting.result.meeting_id}.txt`, "text/plain", transcriptText(meeting.result));
});
ui.downloadJson.addEventListener("click", () => {
  if (meeting.result) {
    download(`${meeting.result.meeting_id}.json`, "application/json", JSON.stringify(meeting.result, null, 2));
  }
});
ui.remove.addEventListener("click", deleteMeeting);
setState("idle");
setConnection("offline");
