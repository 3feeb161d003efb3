import type { HarkClient, TruncateInfo } from "@hark-voice/client";
import { useCallback, useEffect, useState } from "react";

export interface PlayerApi {
  /** Reply audio is coming out of the speaker. */
  playing: boolean;
  /** Milliseconds of reply audio played in this connection. */
  playedMs: number;
  /** The last reply cut short by barge-in or interrupt(), and how much of it was heard. */
  lastTruncation: TruncateInfo | null;
  /** Stop the reply now (silence it here, cancel it on the server). */
  interrupt(): void;
}

/** Reply playback: gapless, and silent the moment the person speaks over it. */
export function useAudioPlayer(client: HarkClient | null): PlayerApi {
  const [playing, setPlaying] = useState(false);
  const [playedMs, setPlayedMs] = useState(0);
  const [lastTruncation, setLastTruncation] = useState<TruncateInfo | null>(null);
  useEffect(() => {
    if (!client) return;
    const byItem = new Map<string, number>();
    let rtcStarted = 0;
    let rtcTotal = 0;
    const offs = [
      client.on("playback", (p) => {
        setPlaying(p.playing);
        if (p.item) {
          byItem.set(p.item, p.ms);
          let total = 0;
          for (const ms of byItem.values()) total += ms;
          setPlayedMs(Math.floor(total));
        } else if (p.playing) {
          rtcStarted = Date.now(); // WebRTC: timed by the sounding track
        } else if (rtcStarted) {
          rtcTotal += Date.now() - rtcStarted;
          rtcStarted = 0;
          setPlayedMs(rtcTotal);
        }
      }),
      client.on("truncated", (t) => {
        byItem.set(t.itemId, t.audioEndMs);
        setLastTruncation(t);
      }),
    ];
    return () => offs.forEach((off) => off());
  }, [client]);
  const interrupt = useCallback(() => client?.interrupt(), [client]);
  return { playing, playedMs, lastTruncation, interrupt };
}
