// Errors a person can act on: each has a code and a message that says what to do.

export type HarkErrorCode =
  | "insecure_context"
  | "microphone_denied"
  | "microphone_missing"
  | "microphone_busy"
  | "unsupported_browser"
  | "server_unreachable"
  | "token_refused"
  | "webrtc_failed"
  | "connection_lost";

export class HarkError extends Error {
  readonly code: HarkErrorCode;
  /** Whether trying again later can help (the server may come back; a denied microphone will not). */
  readonly retryable: boolean;

  constructor(code: HarkErrorCode, message: string, options: { retryable?: boolean; cause?: unknown } = {}) {
    super(message);
    this.name = "HarkError";
    this.code = code;
    this.retryable = options.retryable ?? (code === "server_unreachable" || code === "connection_lost");
    if (options.cause !== undefined) (this as { cause?: unknown }).cause = options.cause;
  }
}

export function insecureContext(): HarkError {
  return new HarkError(
    "insecure_context",
    "The browser only allows microphone access on HTTPS or on localhost. Open this page through https:// or http://localhost.",
  );
}

/** A readable HarkError for a getUserMedia / AudioContext failure. */
export function microphoneError(err: unknown): HarkError {
  const name = (err as { name?: string } | null)?.name;
  if (name === "NotAllowedError" || name === "SecurityError") {
    return new HarkError(
      "microphone_denied",
      "Microphone access was blocked. Allow the microphone for this site and try again.",
      { cause: err },
    );
  }
  if (name === "NotFoundError" || name === "OverconstrainedError") {
    return new HarkError("microphone_missing", "No microphone was found. Connect one and try again.", { cause: err });
  }
  if (name === "NotReadableError" || name === "AbortError") {
    return new HarkError(
      "microphone_busy",
      "The microphone is in use by another application or could not be opened.",
      { cause: err },
    );
  }
  if (err instanceof HarkError) return err;
  return new HarkError("microphone_busy", (err as Error | null)?.message || String(err), { cause: err });
}

export function unreachable(host: string, cause?: unknown): HarkError {
  return new HarkError("server_unreachable", `Cannot reach the hark server at ${host}. Check that it is running.`, {
    cause,
  });
}

export function tokenRefused(status: number, detail?: string): HarkError {
  const why = detail ? `: ${detail}` : "";
  return new HarkError(
    "token_refused",
    `The server refused the credentials (HTTP ${status})${why}. Check the API key your app server uses.`,
  );
}
