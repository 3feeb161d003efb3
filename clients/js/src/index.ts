export { HarkClient } from "./client.js";
export type { ConnectionStatus, HarkClientEvents, HarkClientOptions, TruncateInfo } from "./client.js";
export { AudioIO, requestMicrophone } from "./audio.js";
export type { AudioHandlers, AudioOptions, PlaybackProgress, WorkletUrls } from "./audio.js";
export { HarkError, microphoneError } from "./errors.js";
export type { HarkErrorCode } from "./errors.js";
export * from "./events.js";
export { fetchClientSecret, parseClientSecret } from "./token.js";
export type { ClientSecret, FetchSecretOptions } from "./token.js";
export { ReconnectPolicy, ResumeToken } from "./reconnect.js";
export type { CloseInfo, ReconnectOptions } from "./reconnect.js";
export { LatencyTracker, VOICE_RMS } from "./latency.js";
export type { TurnLatency } from "./latency.js";
export { callsUrl, realtimeUrl, webSocketProtocols, WebRtcTransport, WebRtcUnavailable, WebSocketTransport } from "./transport.js";
export type { Transport, TransportHandlers, TransportKind } from "./transport.js";
export { CaptureChunker, PlaybackQueue } from "./dsp.js";
export type { CaptureChunk, FlushResult } from "./dsp.js";
export {
  captureWorkletSource,
  captureWorkletUrl,
  playbackWorkletSource,
  playbackWorkletUrl,
  CAPTURE_PROCESSOR,
  PLAYBACK_PROCESSOR,
} from "./worklets.js";
export { initialConversation, reduceConversation, withLatency } from "./conversation.js";
export type { ConversationSnapshot, ConversationState, TranscriptEntry } from "./conversation.js";
export { Emitter } from "./emitter.js";
