import { HarkClient, type HarkClientOptions } from "@hark-voice/client";
import { useEffect, useRef, useState } from "react";

/**
 * One HarkClient for the component's lifetime, created in an effect (never during server
 * rendering) and disconnected on unmount. `null` on the server and in the first render.
 */
export function useHarkClient(options: HarkClientOptions = {}): HarkClient | null {
  const [client, setClient] = useState<HarkClient | null>(null);
  const optionsRef = useRef(options);
  optionsRef.current = options;
  useEffect(() => {
    const created = new HarkClient({
      ...optionsRef.current,
      // Always the latest getToken, so a parent may pass a new function each render.
      getToken: () => (optionsRef.current.getToken ?? (async () => null))(),
    });
    setClient(created);
    return () => {
      void created.disconnect();
      created.clear();
    };
  }, []);
  return client;
}
