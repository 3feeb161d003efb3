import type { ConversationState } from "@hark-voice/client";

const LABELS: Record<ConversationState, string> = {
  IDLE: "Ready",
  LISTENING: "Listening",
  THINKING: "Thinking",
  SPEAKING: "Speaking",
};

export function StatusIndicator({ state, live }: { state: ConversationState; live: boolean }) {
  const label = live ? LABELS[state] : "Idle";
  return (
    <div className="status" data-testid="state-indicator" data-state={state} role="status" aria-live="polite">
      <span className="status__dots" aria-hidden="true">
        <i />
        <i />
        <i />
      </span>
      {label}
    </div>
  );
}
