import type { HarkClient } from "@hark-voice/client";
import { useCallback, useEffect, useRef, useState } from "react";

export interface RecorderApi {
  /** Microphone level 0..1, updated at most `everyMs`. */
  level: number;
  /** The latest level without re-rendering (for canvas animations). */
  levelRef: { readonly current: number };
  muted: boolean;
  setMuted(muted: boolean): void;
}

/** The microphone: its level and a mute that stops sending (the connection stays up). */
export function useAudioRecorder(client: HarkClient | null, everyMs = 100): RecorderApi {
  const [level, setLevel] = useState(0);
  const [muted, setMutedState] = useState(false);
  const levelRef = useRef(0);
  useEffect(() => {
    if (!client) return;
    let last = 0;
    return client.on("level", (rms) => {
      levelRef.current = rms;
      const t = Date.now();
      if (t - last >= everyMs) {
        last = t;
        setLevel(rms);
      }
    });
  }, [client, everyMs]);
  const setMuted = useCallback(
    (m: boolean) => {
      client?.setMuted(m);
      setMutedState(m);
    },
    [client],
  );
  return { level, levelRef, muted, setMuted };
}
