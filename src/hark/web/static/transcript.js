// The chat-like transcript: user turns (partial, then final) and assistant replies streaming in.

const NEAR_BOTTOM_PX = 80;

function formatMs(ms) {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return "—";
  return ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${Math.round(ms)} ms`;
}

export { formatMs };

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

export class TranscriptView {
  /**
   * @param {HTMLElement} scroller  the scrolling container
   * @param {HTMLElement} list      where entries are appended
   * @param {object[]} records      live array mirrored for the test hook (window.hark.transcripts)
   */
  constructor(scroller, list, records) {
    this.scroller = scroller;
    this.list = list;
    this.records = records;
    this.entries = new Map(); // item id → entry
    this.byResponse = new Map(); // response id → [entry]
    this.pendingLatency = new Map(); // response id → latency event, when it beats the item
    // Follow new text while the view is scrolled to the bottom; stay put once the user scrolls up.
    this.stick = true;
    scroller.addEventListener("scroll", () => {
      this.stick = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < NEAR_BOTTOM_PX;
    });
  }

  get isEmpty() {
    return this.entries.size === 0;
  }

  clear() {
    this.entries.clear();
    this.byResponse.clear();
    this.pendingLatency.clear();
    this.records.length = 0;
    this.list.replaceChildren();
    this.stick = true;
    this.onChange();
  }

  onChange() {
    document.body.classList.toggle("has-transcript", this.entries.size > 0);
  }

  withScroll(update) {
    update();
    if (this.stick) this.scroller.scrollTop = this.scroller.scrollHeight;
  }

  create(role, itemId, responseId) {
    const node = el("article", `msg msg--${role}`);
    node.dataset.testid = `transcript-${role}`;
    node.dataset.itemId = itemId;
    node.dataset.final = "false";
    const who = el("div", "msg__who", role === "user" ? "You" : "hark");
    const bubble = el("div", "msg__bubble");
    const text = el("p", "msg__text");
    text.dataset.testid = `transcript-${role}-text`;
    bubble.append(text);
    const meta = el("div", "msg__meta");
    node.append(who, bubble, meta);

    const record = { role, itemId, responseId: responseId || null, text: "", final: false, status: "active" };
    const entry = { role, node, text, meta, record, tags: new Map() };
    this.entries.set(itemId, entry);
    this.records.push(record);
    if (responseId) {
      const list = this.byResponse.get(responseId) || [];
      list.push(entry);
      this.byResponse.set(responseId, list);
    }
    this.withScroll(() => this.list.append(node));
    this.onChange();
    return entry;
  }

  setText(entry, value) {
    entry.record.text = value;
    this.withScroll(() => {
      entry.text.textContent = value;
    });
  }

  setState(entry, state) {
    entry.node.dataset.state = state;
    entry.record.status = state;
  }

  tag(entry, key, label, kind) {
    let tag = entry.tags.get(key);
    if (!tag) {
      tag = el("span", `tag${kind ? ` tag--${kind}` : ""}`);
      entry.tags.set(key, tag);
      entry.meta.append(tag);
    }
    tag.textContent = label;
    this.withScroll(() => {});
  }

  user(itemId) {
    return this.entries.get(itemId) || this.create("user", itemId);
  }

  // ---- user turns -------------------------------------------------------------------

  userStarted(itemId) {
    const entry = this.user(itemId);
    if (!entry.record.final) this.setState(entry, "listening");
  }

  userStopped(itemId) {
    const entry = this.user(itemId);
    if (!entry.record.final) this.setState(entry, "transcribing");
  }

  userPartial(itemId, text) {
    const entry = this.user(itemId);
    if (entry.record.final) return;
    this.setState(entry, entry.node.dataset.state === "transcribing" ? "transcribing" : "listening");
    this.setText(entry, text);
  }

  userFinal(itemId, text) {
    const entry = this.user(itemId);
    const value = (text || "").trim();
    entry.record.final = true;
    entry.node.dataset.final = "true";
    if (!value) {
      this.setState(entry, "empty");
      this.setText(entry, "");
      entry.text.textContent = "(nothing recognised)";
      return;
    }
    this.setState(entry, "done");
    this.setText(entry, value);
  }

  userFailed(itemId, message) {
    const entry = this.user(itemId);
    entry.record.final = true;
    entry.node.dataset.final = "true";
    this.setState(entry, "failed");
    if (!entry.record.text) entry.text.textContent = "(could not transcribe)";
    if (message) this.tag(entry, "error", message, "error");
  }

  // ---- assistant replies ------------------------------------------------------------

  assistant(itemId, responseId) {
    let entry = this.entries.get(itemId);
    if (!entry) {
      entry = this.create("assistant", itemId, responseId);
      this.setState(entry, "pending");
      const latency = responseId && this.pendingLatency.get(responseId);
      if (latency) {
        this.pendingLatency.delete(responseId);
        this.showLatency(entry, latency);
      }
    }
    return entry;
  }

  assistantDelta(itemId, responseId, delta) {
    const entry = this.assistant(itemId, responseId);
    if (entry.record.final) return;
    this.setState(entry, "streaming");
    this.setText(entry, entry.record.text + delta);
  }

  assistantDone(itemId, responseId, transcript) {
    const entry = this.assistant(itemId, responseId);
    entry.record.final = true;
    entry.node.dataset.final = "true";
    if (typeof transcript === "string" && transcript.length > 0) this.setText(entry, transcript);
    if (entry.node.dataset.state !== "interrupted") this.setState(entry, "done");
  }

  assistantInterrupted(itemId, playedMs) {
    const entry = this.entries.get(itemId);
    if (!entry) return;
    this.setState(entry, "interrupted");
    entry.record.playedMs = playedMs;
    this.tag(entry, "interrupted", `Interrupted at ${formatMs(playedMs)}`, "warn");
  }

  responseDone(responseId, status, detail) {
    const entries = this.byResponse.get(responseId) || [];
    for (const entry of entries) {
      entry.record.final = true;
      entry.node.dataset.final = "true";
      if (status === "cancelled" && entry.node.dataset.state !== "interrupted") {
        this.setState(entry, "interrupted");
        this.tag(entry, "interrupted", "Interrupted", "warn");
      } else if (status === "failed") {
        this.setState(entry, "failed");
        this.tag(entry, "error", detail ? `Failed: ${detail}` : "Failed", "error");
      } else if (entry.node.dataset.state === "pending" || entry.node.dataset.state === "streaming") {
        this.setState(entry, "done");
      }
      if (!entry.record.text && status !== "failed") entry.text.textContent = "…";
    }
  }

  latency(event) {
    const entries = this.byResponse.get(event.response_id);
    if (!entries || entries.length === 0) {
      if (event.response_id) this.pendingLatency.set(event.response_id, event);
      return;
    }
    this.showLatency(entries[entries.length - 1], event);
  }

  showLatency(entry, event) {
    entry.record.latency = event;
    const parts = [];
    if (event.voice_to_voice_ms != null) parts.push(`${formatMs(event.voice_to_voice_ms)} voice-to-voice`);
    if (event.stt_ms != null) parts.push(`STT ${formatMs(event.stt_ms)}`);
    if (event.llm_ttft_ms != null) parts.push(`LLM ${formatMs(event.llm_ttft_ms)}`);
    if (event.tts_ttfb_ms != null) parts.push(`TTS ${formatMs(event.tts_ttfb_ms)}`);
    if (parts.length === 0) return;
    this.tag(entry, "latency", parts.join(" · "), "latency");
  }
}
