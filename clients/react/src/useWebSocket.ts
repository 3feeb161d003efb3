import {
  type ClientEvent,
  type ConnectionStatus,
  type HarkClient,
  HarkError,
  type TransportKind,
} from "@hark-voice/client";
import { useCallback, useEffect, useState } from "react";

export interface ConnectionApi {
  status: ConnectionStatus;
  /** "webrtc" or "websocket" while connected. */
  transport: TransportKind | null;
  /** The last error a person can act on (no microphone, server unreachable, token refused, ...). */
  error: HarkError | null;
  /** Call from a click: opens the microphone and connects. Resolves false on failure (see `error`). */
  connect(): Promise<boolean>;
  disconnect(): Promise<void>;
  send(event: ClientEvent): boolean;
}

/** The connection to hark — WebRTC when the server offers it, else a WebSocket; the same API. */
export function useWebSocket(client: HarkClient | null): ConnectionApi {
  const [status, setStatus] = useState<ConnectionStatus>("idle");
  const [transport, setTransport] = useState<TransportKind | null>(null);
  const [error, setError] = useState<HarkError | null>(null);

  useEffect(() => {
    if (!client) return;
    setStatus(client.status);
    const offs = [
      client.on("status", (s) => {
        setStatus(s);
        if (s === "closed" || s === "failed") setTransport(null);
      }),
      client.on("transport", setTransport),
      client.on("error", setError),
    ];
    return () => offs.forEach((off) => off());
  }, [client]);

  const connect = useCallback(async () => {
    if (!client) return false;
    setError(null);
    try {
      await client.connect();
      return true;
    } catch (err) {
      setError(err instanceof HarkError ? err : new HarkError("server_unreachable", String(err)));
      return false;
    }
  }, [client]);

  const disconnect = useCallback(async () => {
    await client?.disconnect();
  }, [client]);

  const send = useCallback((event: ClientEvent) => client?.send(event) ?? false, [client]);

  return { status, transport, error, connect, disconnect, send };
}
