// Carriers of Realtime events: a WebSocket, or a WebRTC call (OpenAI's flow) whose data channel
// "oai-events" carries the same events and whose audio travels as tracks.
import { HarkError, tokenRefused, unreachable } from "./errors.js";
import { type AnyServerEvent, type ClientEvent, eventId, parseServerEvent, toBase64 } from "./events.js";
import type { CloseInfo } from "./reconnect.js";
import { hostOf } from "./token.js";

export type TransportKind = "webrtc" | "websocket";

export interface TransportHandlers {
  onEvent(event: AnyServerEvent): void;
  onClose(info: CloseInfo): void;
}

export interface Transport {
  readonly kind: TransportKind;
  readonly open: boolean;
  send(event: ClientEvent): boolean;
  close(): void;
}

/** Past this many bytes waiting in the socket, microphone audio is dropped rather than queued. */
const MAX_BUFFERED_BYTES = 1 << 20;

/** `ws(s)://host/v1/realtime?model=hark[&hark_events=1]` for an http(s) base URL. */
export function realtimeUrl(baseUrl: string, harkEvents = true): string {
  const url = new URL("/v1/realtime", baseUrl);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  url.searchParams.set("model", "hark");
  if (harkEvents) url.searchParams.set("hark_events", "1");
  return url.toString();
}

/** `http(s)://host/v1/realtime/calls[?hark_events=1]`. */
export function callsUrl(baseUrl: string, harkEvents = true): string {
  const url = new URL("/v1/realtime/calls", baseUrl);
  if (harkEvents) url.searchParams.set("hark_events", "1");
  return url.toString();
}

/**
 * Subprotocols for a WebSocket: the credential rides here, never in the URL. Without one, none
 * are offered: Chrome fails a handshake whose server picks no subprotocol from those offered.
 */
export function webSocketProtocols(token: string | null): string[] {
  return token ? ["realtime", `openai-insecure-api-key.${token}`] : [];
}

function withId(event: ClientEvent): ClientEvent {
  return event.event_id ? event : { event_id: eventId(), ...event };
}

export class WebSocketTransport implements Transport {
  readonly kind = "websocket" as const;
  droppedAudioBytes = 0;
  private closing = false;

  private constructor(private readonly ws: WebSocket) {}

  /** Resolves once the socket is open; rejects with `server_unreachable` when it cannot open. */
  static connect(url: string, token: string | null, handlers: TransportHandlers): Promise<WebSocketTransport> {
    return new Promise((resolve, reject) => {
      let opened = false;
      const ws = new WebSocket(url, webSocketProtocols(token));
      const transport = new WebSocketTransport(ws);
      ws.onopen = () => {
        opened = true;
        resolve(transport);
      };
      ws.onmessage = (message) => {
        const event = parseServerEvent(message.data);
        if (event) handlers.onEvent(event);
      };
      ws.onerror = () => {
        if (!opened) reject(unreachable(hostOf(url)));
      };
      ws.onclose = (close) => {
        if (!opened) {
          reject(unreachable(hostOf(url)));
          return;
        }
        handlers.onClose({ code: close.code, reason: close.reason, expected: transport.closing });
      };
    });
  }

  get open(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  send(event: ClientEvent): boolean {
    if (!this.open) return false;
    this.ws.send(JSON.stringify(withId(event)));
    return true;
  }

  /** Append PCM16 microphone audio (as `input_audio_buffer.append`). */
  sendAudio(pcm: Int16Array): boolean {
    if (!this.open) return false;
    if (this.ws.bufferedAmount > MAX_BUFFERED_BYTES) {
      this.droppedAudioBytes += pcm.byteLength;
      return false;
    }
    const bytes = new Uint8Array(pcm.buffer, pcm.byteOffset, pcm.byteLength);
    return this.send({ type: "input_audio_buffer.append", audio: toBase64(bytes) });
  }

  close(): void {
    this.closing = true;
    if (this.ws.readyState <= WebSocket.OPEN) this.ws.close(1000, "client stopped");
  }
}

/** The server does not offer WebRTC (404/405), or the call could not be set up: use the WebSocket. */
export class WebRtcUnavailable extends Error {
  constructor(message: string) {
    super(message);
    this.name = "WebRtcUnavailable";
  }
}

export interface WebRtcOptions {
  iceServers?: RTCIceServer[];
  /** How long the data channel may take to open after the answer. */
  openTimeoutMs?: number;
  fetch?: typeof fetch;
}

export class WebRtcTransport implements Transport {
  readonly kind = "webrtc" as const;
  private closing = false;
  private closed = false;

  private constructor(
    private readonly pc: RTCPeerConnection,
    private readonly channel: RTCDataChannel,
    /** Reply audio from the server. */
    readonly remoteStream: MediaStream,
    /** `Location` of the call, for hanging up. */
    readonly callUrl: string | null,
  ) {}

  /**
   * OpenAI's flow: the SDP offer POSTed to /v1/realtime/calls (application/sdp, Bearer token),
   * the answer in a 201; events on the "oai-events" channel. Rejects with `WebRtcUnavailable`
   * when the caller should fall back to a WebSocket, or `token_refused` when the credential is bad.
   */
  static async connect(
    url: string,
    token: string | null,
    micTrack: MediaStreamTrack,
    handlers: TransportHandlers,
    options: WebRtcOptions = {},
  ): Promise<WebRtcTransport> {
    if (typeof RTCPeerConnection === "undefined") throw new WebRtcUnavailable("This browser has no WebRTC.");
    const pc = new RTCPeerConnection({ iceServers: options.iceServers ?? [] });
    try {
      const remote = new MediaStream();
      const gotTrack = new Promise<void>((resolve) => {
        pc.ontrack = (e) => {
          remote.addTrack(e.track);
          resolve();
        };
      });
      pc.addTrack(micTrack, new MediaStream([micTrack]));
      const channel = pc.createDataChannel("oai-events");
      const offer = await pc.createOffer();
      await pc.setLocalDescription(offer);
      const headers: Record<string, string> = { "Content-Type": "application/sdp" };
      if (token) headers["Authorization"] = `Bearer ${token}`;
      let response: Response;
      try {
        response = await (options.fetch ?? fetch)(url, { method: "POST", body: offer.sdp ?? "", headers });
      } catch {
        // Unreachable, or refused by CORS (a server without WebRTC): the WebSocket says which.
        throw new WebRtcUnavailable(`No answer to the offer from ${hostOf(url)}.`);
      }
      if (response.status === 401 || response.status === 403) throw tokenRefused(response.status);
      if (response.status !== 201 && response.status !== 200) {
        throw new WebRtcUnavailable(`The server answered the offer with HTTP ${response.status}.`);
      }
      const location = response.headers.get("Location");
      await pc.setRemoteDescription({ type: "answer", sdp: await response.text() });
      const transport = new WebRtcTransport(pc, channel, remote, location ? new URL(location, url).toString() : null);
      channel.onmessage = (message) => {
        const event = parseServerEvent(message.data);
        if (event) handlers.onEvent(event);
      };
      await openWithin(channel, options.openTimeoutMs ?? 10_000);
      await Promise.race([gotTrack, new Promise((r) => setTimeout(r, 2000))]);
      const lost = (reason: string) => transport.finish(handlers, 1006, reason);
      channel.onclose = () => lost("data channel closed");
      pc.onconnectionstatechange = () => {
        if (pc.connectionState === "failed" || pc.connectionState === "closed") lost(`peer ${pc.connectionState}`);
      };
      return transport;
    } catch (err) {
      pc.close();
      if (err instanceof HarkError || err instanceof WebRtcUnavailable) throw err;
      throw new WebRtcUnavailable(`WebRTC setup failed: ${(err as Error)?.message ?? String(err)}`);
    }
  }

  get open(): boolean {
    return this.channel.readyState === "open";
  }

  send(event: ClientEvent): boolean {
    if (!this.open) return false;
    this.channel.send(JSON.stringify(withId(event)));
    return true;
  }

  private finish(handlers: TransportHandlers, code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.pc.close();
    handlers.onClose({ code: this.closing ? 1000 : code, reason, expected: this.closing });
  }

  close(): void {
    this.closing = true;
    try {
      this.channel.close();
    } catch {
      /* already closed */
    }
    this.pc.close();
  }
}

function openWithin(channel: RTCDataChannel, ms: number): Promise<void> {
  if (channel.readyState === "open") return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new WebRtcUnavailable("The data channel did not open.")), ms);
    channel.onopen = () => {
      clearTimeout(timer);
      resolve();
    };
  });
}
