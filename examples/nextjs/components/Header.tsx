import type { ConnectionStatus, TransportKind } from "@hark-voice/client";

const LABELS: Record<ConnectionStatus, string> = {
  idle: "Not connected",
  connecting: "Connecting…",
  connected: "Connected",
  reconnecting: "Reconnecting…",
  closed: "Not connected",
  failed: "Connection failed",
};

export function Header({ status, transport }: { status: ConnectionStatus; transport: TransportKind | null }) {
  return (
    <header className="header">
      <div className="brand">
        <svg viewBox="0 0 32 32" aria-hidden="true" className="brand__logo">
          <rect width="32" height="32" rx="9" fill="currentColor" />
          <g stroke="#fff" strokeWidth="2.6" strokeLinecap="round">
            <path d="M9 13v6M13 10v12M17 8v16M21 11v10M25 14v4" />
          </g>
        </svg>
        <span>hark</span>
      </div>
      <div className="header__right">
        {transport && (
          <span className="chip" data-testid="transport" data-transport={transport}>
            {transport === "webrtc" ? "WebRTC" : "WebSocket"}
          </span>
        )}
        <span className="chip conn" data-testid="connection-status" data-status={status}>
          <i aria-hidden="true" />
          {LABELS[status]}
        </span>
      </div>
    </header>
  );
}
