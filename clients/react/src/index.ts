export { useHarkClient } from "./useHarkClient.js";
export { useWebSocket } from "./useWebSocket.js";
export type { ConnectionApi } from "./useWebSocket.js";
export { useAudioRecorder } from "./useAudioRecorder.js";
export type { RecorderApi } from "./useAudioRecorder.js";
export { useAudioPlayer } from "./useAudioPlayer.js";
export type { PlayerApi } from "./useAudioPlayer.js";
export { useConversation } from "./useConversation.js";
export type { ConversationApi } from "./useConversation.js";
export type {
  ConnectionStatus,
  ConversationState,
  HarkClientOptions,
  HarkError,
  TranscriptEntry,
  TurnLatency,
} from "@hark-voice/client";
