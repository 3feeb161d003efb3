// HarkClient: one voice session — microphone, transport (WebRTC or WebSocket, same API),
// playback, barge-in, reconnect with the resume token, teardown.
import { AudioIO, type PlaybackProgress, type WorkletUrls } from "./audio.js";
import { Emitter } from "./emitter.js";
import { HarkError } from "./errors.js";
import { type AnyServerEvent, type ClientEvent, is, pcm16FromBase64, voiceSessionUpdate } from "./events.js";
import { LatencyTracker, type TurnLatency } from "./latency.js";
import { type CloseInfo, type ReconnectOptions, ReconnectPolicy, ResumeToken } from "./reconnect.js";
import {
  callsUrl,
  realtimeUrl,
  type Transport,
  type TransportHandlers,
  type TransportKind,
  WebRtcTransport,
  WebRtcUnavailable,
  WebSocketTransport,
} from "./transport.js";

export type ConnectionStatus = "idle" | "connecting" | "connected" | "reconnecting" | "closed" | "failed";

export interface HarkClientOptions {
  /** The hark server, e.g. "https://voice.example.com". Defaults to the page's origin. */
  baseUrl?: string;
  /** "auto" (default): WebRTC when the server offers it, else WebSocket. */
  transport?: "auto" | TransportKind;
  /**
   * A fresh single-use client secret per connection attempt (see fetchClientSecret), or `null`
   * to connect without one (a server without keys, or on loopback).
   */
  getToken?: () => Promise<string | null>;
  /** Ask for hark's own events (state, latency, resume token). Default true. */
  harkEvents?: boolean;
  /** Extra session settings sent in the first session.update (instructions, tools, ...). */
  session?: Record<string, unknown>;
  reconnect?: ReconnectOptions;
  iceServers?: RTCIceServer[];
  /** The session's audio rate, both ways (hark: 24000). */
  rate?: number;
  /** Worklet URLs for a page whose CSP refuses blob: scripts (see AudioOptions.worklets). */
  worklets?: WorkletUrls;
}

export interface TruncateInfo {
  itemId: string;
  audioEndMs: number;
}

export interface HarkClientEvents {
  /** Every server event, typed (narrow with `is(event, "...")`). */
  event: AnyServerEvent;
  status: ConnectionStatus;
  transport: TransportKind;
  /** Microphone level, 0..1, every chunk (about 25 times a second). */
  level: number;
  playback: PlaybackProgress;
  /** A reply was cut by barge-in or interrupt(): what was heard of it. */
  truncated: TruncateInfo;
  latency: TurnLatency;
  error: HarkError;
  /** Sent client events (audio appends excluded), for logs and tests. */
  sent: ClientEvent;
}

const now = (): number => (typeof performance !== "undefined" ? performance.now() : Date.now());

export class HarkClient extends Emitter<HarkClientEvents> {
  readonly options: Required<Pick<HarkClientOptions, "transport" | "harkEvents" | "rate">> & HarkClientOptions;
  status: ConnectionStatus = "idle";
  transportKind: TransportKind | null = null;
  muted = false;
  sentAudioBytes = 0;
  receivedAudioBytes = 0;
  private audio: AudioIO | null = null;
  private transport: Transport | null = null;
  private readonly resume = new ResumeToken();
  private policy: ReconnectPolicy;
  private readonly latency = new LatencyTracker();
  private stopped = false;
  private generation = 0;
  private reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  private remotePoll: ReturnType<typeof setInterval> | null = null;
  private openResponses = new Set<string>();
  private dropResponses = new Set<string>();
  private dropItems = new Set<string>();
  private audioItems = new Set<string>();
  private heardItems = new Set<string>();

  constructor(options: HarkClientOptions = {}) {
    super();
    this.options = { transport: "auto", harkEvents: true, rate: 24000, ...options };
    this.policy = new ReconnectPolicy(options.reconnect);
  }

  private get baseUrl(): string {
    if (this.options.baseUrl) return this.options.baseUrl;
    if (typeof location !== "undefined") return location.origin;
    throw new HarkError("server_unreachable", "No baseUrl given and no page origin to default to.");
  }

  /**
   * Open the microphone and connect. Call from a user gesture (a click). Rejects with a
   * HarkError (`insecure_context`, `microphone_denied`, `server_unreachable`, `token_refused`, ...).
   */
  async connect(): Promise<void> {
    if (this.audio) return;
    this.stopped = false;
    this.setStatus("connecting");
    const audio = new AudioIO(
      {
        onChunk: (pcm, rms) => this.onMicChunk(pcm, rms),
        onPlayback: (p) => this.onPlayback(p),
      },
      { rate: this.options.rate, ...(this.options.worklets ? { worklets: this.options.worklets } : {}) },
    );
    this.audio = audio;
    try {
      await audio.start();
      await this.openTransport();
      this.policy.reset();
    } catch (err) {
      const error = err instanceof HarkError ? err : new HarkError("server_unreachable", String(err));
      await this.teardown("failed");
      this.emit("error", error);
      throw error;
    }
  }

  private async openTransport(): Promise<void> {
    const audio = this.audio;
    if (!audio) throw new HarkError("connection_lost", "Stopped.");
    // Events of an abandoned attempt (or of the previous connection) are ignored.
    const generation = ++this.generation;
    const handlers: TransportHandlers = {
      onEvent: (event) => {
        if (generation === this.generation && !this.stopped) this.onServerEvent(event);
      },
      onClose: (info) => {
        if (generation === this.generation) this.onClose(info);
      },
    };
    const getToken = this.options.getToken ?? (async () => null);
    const want = this.options.transport;
    let transport: Transport | null = null;
    if (want !== "websocket" && audio.micTrack) {
      try {
        const rtc = await WebRtcTransport.connect(
          callsUrl(this.baseUrl, this.options.harkEvents),
          await getToken(),
          audio.micTrack,
          handlers,
          { iceServers: this.options.iceServers },
        );
        transport = rtc;
        this.transport = rtc;
        audio.attachRemote(rtc.remoteStream);
      } catch (err) {
        if (!(err instanceof WebRtcUnavailable) || want === "webrtc") throw err;
      }
    }
    if (!transport) {
      const ws = await WebSocketTransport.connect(
        realtimeUrl(this.baseUrl, this.options.harkEvents),
        await getToken(),
        handlers,
      );
      transport = ws;
      this.transport = ws;
    }
    if (this.stopped) {
      transport.close();
      throw new HarkError("connection_lost", "Stopped.");
    }
    this.transportKind = transport.kind;
    this.emit("transport", transport.kind);
    // hark.resume must be the first event; the session settings follow.
    const token = this.resume.take();
    if (token) this.send({ type: "hark.resume", token });
    this.send(voiceSessionUpdate(this.options.rate, this.options.session));
    this.setStatus("connected");
    if (transport.kind === "webrtc") this.startRemotePoll();
  }

  /** Send one client event; false when not connected. */
  send(event: ClientEvent): boolean {
    const ok = this.transport?.send(event) ?? false;
    if (ok) this.emit("sent", event);
    return ok;
  }

  /** Stop sending the microphone (the connection stays). */
  setMuted(muted: boolean): void {
    this.muted = muted;
    const track = this.audio?.micTrack;
    if (track && this.transportKind === "webrtc") track.enabled = !muted;
  }

  /** Stop the reply now: silence it here, cancel it on the server, record what was heard. */
  interrupt(): void {
    this.bargeIn();
    if (this.openResponses.size > 0) this.send({ type: "response.cancel" });
    if (this.transportKind === "webrtc") this.send({ type: "output_audio_buffer.clear" });
  }

  /** Reply audio is playing or queued. */
  get playing(): boolean {
    if (!this.audio) return false;
    if (this.transportKind === "webrtc") return !this.audio.remoteMuted && this.audio.remoteLevel() > 0.003;
    return this.audio.busy;
  }

  get sampleRate(): number {
    return this.audio?.sampleRate ?? 0;
  }

  /** Hang up and release everything (microphone, context, socket or peer connection). */
  async disconnect(): Promise<void> {
    this.stopped = true;
    await this.teardown("closed");
  }

  private async teardown(status: ConnectionStatus): Promise<void> {
    // 1. No more reconnects or polls.
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    if (this.remotePoll) clearInterval(this.remotePoll);
    this.reconnectTimer = this.remotePoll = null;
    // 2. Close the transport (expected: no reconnect).
    const transport = this.transport;
    this.transport = null;
    this.generation++;
    transport?.close();
    // 3. Release the audio.
    const audio = this.audio;
    this.audio = null;
    await audio?.stop();
    this.openResponses.clear();
    this.transportKind = null;
    this.setStatus(status);
  }

  private setStatus(status: ConnectionStatus): void {
    if (this.status === status) return;
    this.status = status;
    this.emit("status", status);
  }

  // ---- reconnect --------------------------------------------------------------------------------

  private onClose(info: CloseInfo): void {
    this.transport = null;
    if (this.stopped || info.expected) return;
    const delay = this.policy.next(info);
    if (delay === null) {
      this.emit(
        "error",
        new HarkError("connection_lost", `The server closed the connection${info.reason ? `: ${info.reason}` : ""}.`, {
          retryable: false,
        }),
      );
      void this.teardown("failed");
      return;
    }
    this.setStatus("reconnecting");
    this.bargeIn();
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      this.openTransport()
        .then(() => this.policy.reset())
        .catch((err: unknown) => {
          if (err instanceof HarkError && err.code === "token_refused") {
            this.emit("error", err);
            void this.teardown("failed");
            return;
          }
          this.onClose({ code: 1006, reason: "reconnect failed", expected: false });
        });
    }, delay);
  }

  // ---- audio ------------------------------------------------------------------------------------

  private onMicChunk(pcm: Int16Array, rms: number): void {
    this.emit("level", this.muted ? 0 : rms);
    if (this.muted) return;
    this.latency.level(rms, now());
    const t = this.transport;
    if (t instanceof WebSocketTransport && t.sendAudio(pcm)) this.sentAudioBytes += pcm.byteLength;
  }

  private onPlayback(progress: PlaybackProgress): void {
    if (progress.playing && progress.item && !this.heardItems.has(progress.item)) {
      this.heardItems.add(progress.item);
      this.notePlayed();
    }
    this.emit("playback", progress);
  }

  private notePlayed(): void {
    const at = now() + (this.audio?.outputLatencyS ?? 0) * 1000;
    const turn = this.latency.played(at);
    if (turn) this.emit("latency", turn);
  }

  private startRemotePoll(): void {
    if (this.remotePoll) clearInterval(this.remotePoll);
    let wasPlaying = false;
    this.remotePoll = setInterval(() => {
      const audio = this.audio;
      if (!audio) return;
      const level = audio.remoteMuted ? 0 : audio.remoteLevel();
      const playing = level > 0.003;
      if (playing && this.latency.waiting) this.notePlayed();
      if (playing !== wasPlaying) {
        wasPlaying = playing;
        this.emit("playback", { item: null, ms: 0, playing });
      }
    }, 10);
  }

  /** The person spoke over the reply (or interrupt()): silence it at once. */
  private bargeIn(): void {
    for (const id of this.openResponses) this.dropResponses.add(id);
    const audio = this.audio;
    if (!audio) return;
    if (this.transportKind === "webrtc") {
      // The server stops the track and knows what played; the gain cuts what is in flight.
      audio.muteRemote(true);
      return;
    }
    const pending = [...this.audioItems].filter((item) => audio.enqueuedMs(item) > audio.playedMs(item) + 0.5);
    if (pending.length === 0 && !audio.busy) return;
    for (const item of pending) this.dropItems.add(item);
    void audio.flush().then(({ item: current, ms }) => {
      if (this.audio !== audio) return;
      for (const item of pending) {
        const played = item === current ? ms : audio.playedMs(item);
        const audioEndMs = Math.max(0, Math.min(Math.floor(played), Math.floor(audio.enqueuedMs(item))));
        this.send({ type: "conversation.item.truncate", item_id: item, content_index: 0, audio_end_ms: audioEndMs });
        this.audioItems.delete(item);
        this.emit("truncated", { itemId: item, audioEndMs });
      }
    });
  }

  // ---- server events ----------------------------------------------------------------------------

  private onServerEvent(event: AnyServerEvent): void {
    if (is(event, "input_audio_buffer.speech_started")) {
      this.latency.speechStarted();
      this.bargeIn();
    } else if (is(event, "input_audio_buffer.speech_stopped")) {
      this.latency.speechStopped(now());
    } else if (is(event, "response.created")) {
      this.openResponses.add(event.response.id);
      this.latency.responseCreated(event.response.id);
      this.audio?.muteRemote(false);
    } else if (is(event, "response.done")) {
      this.openResponses.delete(event.response.id);
    } else if (is(event, "response.output_audio.delta")) {
      const pcm = pcm16FromBase64(event.delta);
      this.receivedAudioBytes += pcm.byteLength;
      if (!this.dropResponses.has(event.response_id) && !this.dropItems.has(event.item_id)) {
        this.audioItems.add(event.item_id);
        this.audio?.enqueue(event.item_id, pcm);
      }
    } else if (is(event, "output_audio_buffer.started")) {
      this.audio?.muteRemote(false);
    } else if (is(event, "hark.output_resumed")) {
      // The speech over the reply was not an interruption ("mhm", a cough): the server plays the
      // reply on from where it paused, so what bargeIn() silenced is heard again.
      this.dropResponses.delete(event.response_id);
      this.dropItems.delete(event.item_id);
      if (this.transportKind === "webrtc") this.audio?.muteRemote(false);
    } else if (is(event, "hark.resume_token")) {
      this.resume.update(event.token, event.expires_at);
    } else if (is(event, "hark.latency")) {
      const { end_of_turn_ms, stt_ms, llm_ttft_ms, tts_ttfb_ms, voice_to_voice_ms } = event;
      this.emit(
        "latency",
        this.latency.server(event.response_id, { end_of_turn_ms, stt_ms, llm_ttft_ms, tts_ttfb_ms, voice_to_voice_ms }),
      );
    }
    this.emit("event", event);
  }
}
