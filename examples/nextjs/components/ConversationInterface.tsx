"use client";

import { useConversation } from "@hark-voice/react";
import { useCallback, useEffect, useRef } from "react";
import { AudioVisualizer } from "./AudioVisualizer";
import { Header } from "./Header";
import { StatusIndicator } from "./StatusIndicator";

/** Asks this app's server for a single-use client secret (the API key stays there). */
async function getToken(): Promise<string | null> {
  const response = await fetch("/api/session", { method: "POST", cache: "no-store" });
  if (!response.ok) {
    const body = (await response.json().catch(() => ({}))) as { error?: { message?: string } };
    throw new Error(body.error?.message ?? `The app server could not get a session (HTTP ${response.status}).`);
  }
  return ((await response.json()) as { value: string }).value;
}

function ms(value: number | null | undefined): string {
  return typeof value === "number" ? `${Math.round(value)} ms` : "—";
}

export function ConversationInterface({ harkUrl }: { harkUrl: string }) {
  const convo = useConversation({ baseUrl: harkUrl, getToken });
  const { connection, recorder, player } = convo;
  const live = connection.status === "connected" || connection.status === "reconnecting";
  const busy = connection.status === "connecting";
  // The newest turn with each figure (an interrupted reply may have no server figure).
  const heard = [...convo.latency].reverse().find((t) => t.heardMs !== null);
  const server = [...convo.latency].reverse().find((t) => t.server !== null)?.server;
  const scroller = useRef<HTMLDivElement>(null);

  // A plain-data view for tests and debugging; nothing here touches the browser during SSR.
  useEffect(() => {
    (window as unknown as { harkExample: unknown }).harkExample = {
      state: convo.state,
      status: connection.status,
      transport: connection.transport,
      transcripts: convo.transcripts,
      latency: convo.latency,
      playing: player.playing,
      playedMs: player.playedMs,
      truncation: player.lastTruncation,
      error: connection.error?.code ?? null,
    };
  });

  useEffect(() => {
    scroller.current?.scrollTo({ top: scroller.current.scrollHeight, behavior: "smooth" });
  }, [convo.transcripts]);

  const toggle = useCallback(() => {
    if (live || busy) void convo.stop();
    else void convo.start();
  }, [live, busy, convo]);

  return (
    <div className="app">
      <Header status={connection.status} transport={connection.transport} />

      {connection.error && (
        <div className="alert" role="alert" data-testid="error" data-code={connection.error.code}>
          {connection.error.message}
        </div>
      )}
      {convo.llmMode === "echo" && live && (
        <div className="notice" data-testid="echo-notice">
          Echo mode: no language model is configured on the server, so hark repeats what it hears.
        </div>
      )}

      <main className="conversation" ref={scroller} data-testid="transcript">
        {convo.transcripts.length === 0 ? (
          <div className="empty">
            <h1>Talk to hark</h1>
            <p>Press the microphone and just speak. Interrupt any time — it stops and listens.</p>
          </div>
        ) : (
          convo.transcripts.map((t) => (
            <div
              key={t.id}
              className={`bubble bubble--${t.role}${t.final ? "" : " bubble--live"}`}
              data-testid={`transcript-${t.role}`}
              data-final={t.final}
            >
              {t.text || "…"}
              {t.interrupted && <span className="bubble__cut"> — interrupted</span>}
            </div>
          ))
        )}
      </main>

      <footer className="dock">
        <div className="dock__row">
          <StatusIndicator state={convo.state} live={live} />
          <div className="dock__actions">
            <button
              type="button"
              className="ghost"
              onClick={() => convo.setMuted(!convo.muted)}
              disabled={!live}
              aria-pressed={convo.muted}
              data-testid="mute-button"
            >
              {convo.muted ? "Unmute" : "Mute"}
            </button>
            <button
              type="button"
              className="ghost"
              onClick={convo.interrupt}
              disabled={!live || convo.state !== "SPEAKING"}
              data-testid="interrupt-button"
            >
              Interrupt
            </button>
          </div>
        </div>

        <div className="stage">
          <AudioVisualizer levelRef={recorder.levelRef} active={live} speaking={player.playing} />
          <button
            type="button"
            className={`talk${live ? " talk--live" : ""}`}
            onClick={toggle}
            data-testid="start-button"
            aria-pressed={live}
          >
            {busy ? "Connecting…" : live ? "Stop" : "Start"}
          </button>
        </div>

        <dl className="latency" data-testid="latency">
          <div title="Measured in this browser: from the end of your speech at the microphone to the first reply sample played">
            <dt>
              <span className="long">You heard the reply after</span>
              <span className="short">You heard it after</span>
            </dt>
            <dd data-testid="latency-heard">{ms(heard?.heardMs)}</dd>
          </div>
          <div title="Measured by hark: from the end of speech its VAD saw to the first reply audio it sent">
            <dt>
              <span className="long">Server: speech end → audio sent</span>
              <span className="short">Server figure</span>
            </dt>
            <dd data-testid="latency-server">{ms(server?.voice_to_voice_ms)}</dd>
          </div>
          <div title="Measured by hark: end of speech to the final transcript">
            <dt>
              <span className="long">Speech-to-text</span>
              <span className="short">Transcript</span>
            </dt>
            <dd>{ms(server?.stt_ms)}</dd>
          </div>
        </dl>
      </footer>
    </div>
  );
}
