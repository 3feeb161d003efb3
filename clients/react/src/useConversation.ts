import {
  type ConversationSnapshot,
  type HarkClient,
  type HarkClientOptions,
  initialConversation,
  reduceConversation,
  withLatency,
} from "@hark-voice/client";
import { useEffect, useState } from "react";
import { type PlayerApi, useAudioPlayer } from "./useAudioPlayer.js";
import { type RecorderApi, useAudioRecorder } from "./useAudioRecorder.js";
import { useHarkClient } from "./useHarkClient.js";
import { type ConnectionApi, useWebSocket } from "./useWebSocket.js";

export interface ConversationApi extends ConversationSnapshot {
  client: HarkClient | null;
  connection: ConnectionApi;
  recorder: RecorderApi;
  player: PlayerApi;
  /** Start talking (call from a click). */
  start(): Promise<boolean>;
  stop(): Promise<void>;
  interrupt(): void;
  muted: boolean;
  setMuted(muted: boolean): void;
}

/**
 * A whole voice conversation: state (IDLE / LISTENING / THINKING / SPEAKING), live and final
 * transcripts, per-turn latency (`heardMs` measured here, `server` as hark reports it),
 * interrupt and mute. Safe under server rendering: nothing touches the browser until mounted.
 */
export function useConversation(options: HarkClientOptions = {}): ConversationApi {
  const client = useHarkClient(options);
  const connection = useWebSocket(client);
  const recorder = useAudioRecorder(client);
  const player = useAudioPlayer(client);
  const [snapshot, setSnapshot] = useState<ConversationSnapshot>(initialConversation);

  useEffect(() => {
    if (!client) return;
    const offs = [
      client.on("event", (event) => setSnapshot((s) => reduceConversation(s, event))),
      client.on("latency", (turn) => setSnapshot((s) => withLatency(s, turn))),
      client.on("status", (status) => {
        if (status === "closed" || status === "failed") setSnapshot((s) => ({ ...s, state: "IDLE" }));
      }),
    ];
    return () => offs.forEach((off) => off());
  }, [client]);

  return {
    ...snapshot,
    client,
    connection,
    recorder,
    player,
    start: connection.connect,
    stop: connection.disconnect,
    interrupt: player.interrupt,
    muted: recorder.muted,
    setMuted: recorder.setMuted,
  };
}
