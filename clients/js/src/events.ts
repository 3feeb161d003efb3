// The Realtime events hark sends (GA names, plus hark's own hark.* events) and the few a client
// sends. Types cover the fields clients read; unknown events still parse, as `UnknownServerEvent`.

export interface RealtimeErrorBody {
  type?: string;
  code?: string | null;
  message?: string;
  param?: string | null;
  event_id?: string | null;
}

export interface SessionInfo {
  id?: string;
  type?: string;
  audio?: {
    input?: { format?: { type?: string; rate?: number }; turn_detection?: unknown };
    output?: { format?: { type?: string; rate?: number } };
  };
  [key: string]: unknown;
}

export interface ResponseInfo {
  id: string;
  status?: "in_progress" | "completed" | "cancelled" | "failed" | "incomplete";
  status_details?: { reason?: string; error?: { message?: string } } | null;
  [key: string]: unknown;
}

export type HarkState = "idle" | "listening" | "thinking" | "speaking";

/** hark.latency: milliseconds measured on the server, `null` where not applicable. */
export interface ServerLatency {
  end_of_turn_ms: number | null;
  stt_ms: number | null;
  llm_ttft_ms: number | null;
  tts_ttfb_ms: number | null;
  /** End of speech (server VAD) → first reply audio *sent*; not what the person heard. */
  voice_to_voice_ms: number | null;
}

interface Base<T extends string> {
  type: T;
  event_id?: string;
}

export type ServerEvent =
  | (Base<"session.created" | "session.updated"> & { session: SessionInfo })
  | (Base<"error"> & { error: RealtimeErrorBody })
  | (Base<"input_audio_buffer.speech_started"> & { item_id: string; audio_start_ms?: number })
  | (Base<"input_audio_buffer.speech_stopped"> & { item_id: string; audio_end_ms?: number })
  | (Base<"input_audio_buffer.committed"> & { item_id: string })
  | Base<"input_audio_buffer.cleared">
  | (Base<"conversation.item.input_audio_transcription.delta"> & {
      item_id: string;
      delta?: string;
      /** hark's addition: the whole partial hypothesis so far. */
      transcript?: string;
    })
  | (Base<"conversation.item.input_audio_transcription.completed"> & { item_id: string; transcript: string })
  | (Base<"conversation.item.input_audio_transcription.failed"> & { item_id: string; error?: RealtimeErrorBody })
  | (Base<"response.created"> & { response: ResponseInfo })
  | (Base<"response.done"> & { response: ResponseInfo })
  | (Base<"response.output_item.added" | "response.output_item.done"> & {
      response_id: string;
      item: { id?: string; type?: string; role?: string };
    })
  | (Base<"response.output_audio.delta"> & { response_id: string; item_id: string; delta: string })
  | (Base<"response.output_audio.done"> & { response_id: string; item_id: string })
  | (Base<"response.output_audio_transcript.delta" | "response.output_text.delta"> & {
      response_id: string;
      item_id: string;
      delta: string;
    })
  | (Base<"response.output_audio_transcript.done"> & { response_id: string; item_id: string; transcript: string })
  | (Base<"response.output_text.done"> & { response_id: string; item_id: string; text: string })
  | (Base<"conversation.item.truncated"> & { item_id: string; audio_end_ms: number })
  | (Base<"output_audio_buffer.started" | "output_audio_buffer.stopped" | "output_audio_buffer.cleared"> & {
      response_id?: string;
    })
  | (Base<"hark.state"> & { state: HarkState })
  | (Base<"hark.latency"> & ServerLatency & { response_id?: string })
  | (Base<"hark.llm_status"> & { mode: "llm" | "echo"; message?: string; setting?: string })
  | (Base<"hark.resume_token"> & { token: string; expires_at: number })
  | (Base<"hark.resumed"> & { previous_session_id: string; items: number })
  | (Base<"hark.output_paused" | "hark.output_resumed"> & { response_id: string; item_id: string; audio_ms: number })
  | (Base<"hark.speech_ignored"> & { item_id: string; reason: "backchannel" | "noise" | "self_speech" });

export type KnownServerEventType = ServerEvent["type"];

/** Any event hark may add later: typed loosely, never dropped. */
export interface UnknownServerEvent {
  type: string;
  event_id?: string;
  [key: string]: unknown;
}

export type AnyServerEvent = ServerEvent | UnknownServerEvent;

/** The event type(s) whose `type` can be T (some members cover several names). */
export type EventOf<T extends KnownServerEventType> = ServerEvent extends infer E
  ? E extends { type: infer U }
    ? T extends U
      ? E & { type: T }
      : never
    : never
  : never;

export interface ClientEvent {
  type: string;
  event_id?: string;
  [key: string]: unknown;
}

/** Parse one text frame / data-channel message; `null` for anything that is not an event. */
export function parseServerEvent(data: unknown): AnyServerEvent | null {
  if (typeof data !== "string") return null;
  let value: unknown;
  try {
    value = JSON.parse(data);
  } catch {
    return null;
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) return null;
  const type = (value as { type?: unknown }).type;
  return typeof type === "string" ? (value as AnyServerEvent) : null;
}

/** Narrow an event to a known type: `if (is(e, "hark.latency")) e.stt_ms`. */
export function is<T extends KnownServerEventType>(event: AnyServerEvent, type: T): event is EventOf<T> {
  return event.type === type;
}

let counter = 0;

/** A unique client event id. */
export function eventId(): string {
  counter += 1;
  return `evt_hark_${Date.now().toString(36)}_${counter}`;
}

/** Base64 of bytes (chunked, so large buffers do not overflow the call stack). */
export function toBase64(buffer: ArrayBuffer | Uint8Array): string {
  const bytes = buffer instanceof Uint8Array ? buffer : new Uint8Array(buffer);
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

/** Little-endian PCM16 from base64, as Int16 samples. */
export function pcm16FromBase64(b64: string): Int16Array {
  const binary = atob(b64);
  const n = binary.length >> 1;
  const out = new Int16Array(n);
  for (let i = 0, j = 0; i < n; i++, j += 2) {
    const v = binary.charCodeAt(j) | (binary.charCodeAt(j + 1) << 8);
    out[i] = v >= 0x8000 ? v - 0x10000 : v;
  }
  return out;
}

/** The session.update a voice client sends first: PCM16 at `rate` both ways, server VAD. */
export function voiceSessionUpdate(rate = 24000, extra: Record<string, unknown> = {}): ClientEvent {
  return {
    type: "session.update",
    session: {
      type: "realtime",
      output_modalities: ["audio"],
      audio: {
        input: { format: { type: "audio/pcm", rate }, turn_detection: { type: "server_vad" } },
        output: { format: { type: "audio/pcm", rate } },
      },
      ...extra,
    },
  };
}
