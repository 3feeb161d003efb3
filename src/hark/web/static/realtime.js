// A thin client for hark's OpenAI Realtime-compatible WebSocket endpoint.

const MAX_BUFFERED_BYTES = 1 << 20; // past this, audio is dropped rather than queued

let counter = 0;
function eventId() {
  counter += 1;
  return `evt_web_${Date.now().toString(36)}_${counter}`;
}

/** The realtime URL for this page's own host. The page opts in to hark's own events (state,
 * latency, LLM status) with hark_events=1; other clients get only OpenAI's events. */
export function realtimeUrl(location = window.location) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/v1/realtime?model=hark&hark_events=1`;
}

/** Base64 of an ArrayBuffer (chunked, so large buffers do not overflow the call stack). */
export function toBase64(buffer) {
  const bytes = new Uint8Array(buffer);
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

/** ArrayBuffer of little-endian PCM16 from base64 (as native-endian Int16 samples). */
export function pcm16FromBase64(b64) {
  const binary = atob(b64);
  const n = binary.length >> 1;
  const out = new Int16Array(n);
  for (let i = 0, j = 0; i < n; i++, j += 2) {
    const v = binary.charCodeAt(j) | (binary.charCodeAt(j + 1) << 8);
    out[i] = v >= 0x8000 ? v - 0x10000 : v;
  }
  return out.buffer;
}

export class RealtimeClient {
  /**
   * @param {string} url
   * @param {{onEvent: (e: object) => void, onClose: (info: {code: number, reason: string,
   *          wasClean: boolean, expected: boolean}) => void}} handlers
   */
  constructor(url, handlers) {
    this.url = url;
    this.handlers = handlers;
    this.ws = null;
    this.closing = false;
    this.droppedAudio = 0;
  }

  /** Resolves once the socket is open; rejects when it cannot be opened. */
  connect() {
    return new Promise((resolve, reject) => {
      let opened = false;
      const ws = new WebSocket(this.url);
      this.ws = ws;
      ws.onopen = () => {
        opened = true;
        resolve();
      };
      ws.onmessage = (message) => {
        if (typeof message.data !== "string") return;
        let event;
        try {
          event = JSON.parse(message.data);
        } catch {
          console.warn("hark: ignoring a frame that is not JSON");
          return;
        }
        if (event && typeof event.type === "string") this.handlers.onEvent(event);
      };
      const unreachable = () => new Error(`Cannot reach the hark server at ${new URL(this.url).host}.`);
      ws.onerror = () => {
        if (!opened) reject(unreachable());
      };
      ws.onclose = (close) => {
        if (!opened) {
          reject(unreachable());
          return;
        }
        this.ws = null;
        this.handlers.onClose({
          code: close.code,
          reason: close.reason,
          wasClean: close.wasClean,
          expected: this.closing,
        });
      };
    });
  }

  get open() {
    return !!this.ws && this.ws.readyState === WebSocket.OPEN;
  }

  /** Send one client event; an event_id is added when it has none. */
  send(event) {
    if (!this.open) return false;
    const payload = event.event_id ? event : { event_id: eventId(), ...event };
    this.ws.send(JSON.stringify(payload));
    return true;
  }

  /** Append PCM16 24 kHz microphone audio to the server's input buffer. */
  appendAudio(pcm) {
    if (!this.open) return false;
    if (this.ws.bufferedAmount > MAX_BUFFERED_BYTES) {
      this.droppedAudio += pcm.byteLength;
      return false;
    }
    return this.send({ type: "input_audio_buffer.append", audio: toBase64(pcm) });
  }

  close() {
    this.closing = true;
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) this.ws.close(1000, "client stopped");
  }
}
