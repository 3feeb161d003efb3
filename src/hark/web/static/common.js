// What the voice page (app.js) and the meetings page (meeting.js) share: the dock controls
// (Start/Stop button, state indicator, level meter), the connection chip and the toasts.

import { LevelMeter } from "./visualizer.js";

const TOAST_MS = 7000;
const MAX_TOASTS = 4;

export const CONNECTION_LABELS = {
  offline: "Not connected",
  connecting: "Connecting…",
  connected: "Connected",
  lost: "Connection lost",
  error: "Server unreachable",
};

const TALK_LABELS = {
  stopped: "Start",
  starting: "Starting…",
  running: "Stop",
  stopping: "Stopping…",
};

export const $ = (id) => document.getElementById(id);

/** The elements both pages have: the dock, the connection chip and the toast stack. */
export function sharedElements() {
  return {
    talk: $("talk"),
    talkLabel: document.querySelector("#talk .talk__label"),
    state: $("state"),
    stateLabel: document.querySelector("#state .state__label"),
    conn: $("conn"),
    connLabel: document.querySelector("#conn .conn__label"),
    meter: $("meter"),
    toasts: $("toasts"),
  };
}

/** The microphone level meter; its level also drives the Start button's --level glow. */
export function talkMeter(ui) {
  return new LevelMeter(ui.meter, (level) => {
    ui.talk.style.setProperty("--level", level.toFixed(3));
  });
}

/** Show a state: the indicator's data-state and label, the body's data-state, the meter's colours. */
export function showState(ui, meter, { state, indicator = state, label }) {
  ui.state.dataset.state = indicator;
  ui.stateLabel.textContent = label;
  document.body.dataset.state = state;
  meter.refreshColors();
}

/** Record the connection status on `hook` (window.hark / window.harkMeeting) and show it. */
export function showConnection(ui, hook, status) {
  hook.connection = status;
  ui.conn.dataset.status = status;
  ui.connLabel.textContent = CONNECTION_LABELS[status] || status;
}

/** The Start/Stop button. mode: "stopped" | "starting" | "running" | "stopping". */
export function showTalkButton(ui, mode) {
  ui.talk.dataset.running = mode === "stopped" ? "false" : mode === "running" ? "true" : "starting";
  ui.talk.setAttribute("aria-pressed", String(mode !== "stopped"));
  ui.talk.disabled = mode === "stopping";
  ui.talkLabel.textContent = TALK_LABELS[mode];
}

/** toast(message, {kind, detail}) for `container`: repeats are counted, at most MAX_TOASTS shown. */
export function toaster(container) {
  function dismiss(node) {
    clearTimeout(node._timer);
    node.classList.add("toast--leaving");
    setTimeout(() => node.remove(), 200);
  }

  return function toast(message, { kind = "error", detail = "" } = {}) {
    const text = String(message || "Something went wrong");
    for (const existing of container.children) {
      if (existing.dataset.message === text) {
        const count = Number(existing.dataset.count || "1") + 1;
        existing.dataset.count = String(count);
        existing.querySelector(".toast__count").textContent = `×${count}`;
        clearTimeout(existing._timer);
        existing._timer = setTimeout(() => dismiss(existing), TOAST_MS);
        return;
      }
    }
    const node = document.createElement("div");
    node.className = `toast toast--${kind}`;
    node.dataset.testid = `toast-${kind}`;
    node.dataset.message = text;
    node.setAttribute("role", kind === "error" ? "alert" : "status");
    const body = document.createElement("div");
    body.className = "toast__body";
    const msg = document.createElement("p");
    msg.className = "toast__message";
    msg.textContent = text;
    body.append(msg);
    if (detail) {
      const d = document.createElement("p");
      d.className = "toast__detail";
      d.textContent = detail;
      body.append(d);
    }
    const count = document.createElement("span");
    count.className = "toast__count";
    const close = document.createElement("button");
    close.className = "icon-btn toast__close";
    close.type = "button";
    close.setAttribute("aria-label", "Dismiss");
    close.innerHTML = '<svg aria-hidden="true"><use href="#i-close"/></svg>';
    close.addEventListener("click", () => dismiss(node));
    node.append(body, count, close);
    container.append(node);
    while (container.children.length > MAX_TOASTS) container.firstElementChild.remove();
    node._timer = setTimeout(() => dismiss(node), TOAST_MS);
  };
}
