// Single-use client secrets: minted by an app server that holds the API key, spent by the browser.
import { HarkError, tokenRefused, unreachable } from "./errors.js";

export interface ClientSecret {
  value: string;
  /** Unix seconds. */
  expiresAt: number;
}

export interface FetchSecretOptions {
  /** Server-side only: the API key. Never pass one from a browser. */
  apiKey?: string;
  /** Seconds the secret lives (the server caps it). */
  ttlSeconds?: number;
  headers?: Record<string, string>;
  fetch?: typeof fetch;
  signal?: AbortSignal;
}

/** Parse `{value, expires_at}` (OpenAI's GA client_secrets answer; also `{client_secret: {...}}`). */
export function parseClientSecret(body: unknown): ClientSecret {
  const obj = (body ?? {}) as Record<string, unknown>;
  const inner = (typeof obj["client_secret"] === "object" && obj["client_secret"] !== null
    ? obj["client_secret"]
    : obj) as Record<string, unknown>;
  const value = inner["value"];
  const expires = inner["expires_at"];
  if (typeof value !== "string" || value.length === 0) {
    throw new HarkError("token_refused", "The token endpoint answered without a client secret.");
  }
  return { value, expiresAt: typeof expires === "number" ? expires : 0 };
}

/**
 * POST `url` (hark's `/v1/realtime/client_secrets`, or your app's route that calls it) and return
 * the single-use secret. 401/403 → `token_refused`; no answer → `server_unreachable`.
 */
export async function fetchClientSecret(url: string, options: FetchSecretOptions = {}): Promise<ClientSecret> {
  const doFetch = options.fetch ?? fetch;
  const headers: Record<string, string> = { "Content-Type": "application/json", ...options.headers };
  if (options.apiKey) headers["Authorization"] = `Bearer ${options.apiKey}`;
  const body = JSON.stringify({
    session: { type: "realtime" },
    ...(options.ttlSeconds ? { expires_after: { anchor: "created_at", seconds: options.ttlSeconds } } : {}),
  });
  let response: Response;
  try {
    response = await doFetch(url, { method: "POST", headers, body, signal: options.signal, cache: "no-store" });
  } catch (err) {
    throw unreachable(hostOf(url), err);
  }
  if (response.status === 401 || response.status === 403) {
    throw tokenRefused(response.status, await errorMessage(response));
  }
  if (!response.ok) {
    throw new HarkError("server_unreachable", `The token endpoint answered HTTP ${response.status}.`, {
      retryable: response.status >= 500 || response.status === 429,
    });
  }
  return parseClientSecret(await response.json());
}

async function errorMessage(response: Response): Promise<string | undefined> {
  try {
    const body = (await response.json()) as { error?: { message?: string } | string };
    return typeof body.error === "string" ? body.error : body.error?.message;
  } catch {
    return undefined;
  }
}

export function hostOf(url: string): string {
  try {
    return new URL(url, "http://localhost").host;
  } catch {
    return url;
  }
}
