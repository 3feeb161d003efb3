// When to reconnect, and with what: a pure policy (no timers) and the resume token it carries.

export interface ReconnectOptions {
  /** Attempts after a drop before giving up (0: never reconnect). */
  maxAttempts?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** 0..1: the share of each delay that is random, so many clients do not return at once. */
  jitter?: number;
}

export interface CloseInfo {
  code: number;
  reason: string;
  /** The client asked for the close (disconnect()). */
  expected: boolean;
}

/** Closes that another attempt cannot mend: policy violation, auth refused, bad request. */
const FINAL_CODES = new Set([1002, 1003, 1007, 1008, 1009, 4001, 4003, 4400, 4401, 4403]);

export class ReconnectPolicy {
  readonly maxAttempts: number;
  private readonly base: number;
  private readonly max: number;
  private readonly jitter: number;
  private attempt = 0;

  constructor(options: ReconnectOptions = {}, private readonly random: () => number = Math.random) {
    this.maxAttempts = options.maxAttempts ?? 5;
    this.base = options.baseDelayMs ?? 500;
    this.max = options.maxDelayMs ?? 8000;
    this.jitter = Math.min(1, Math.max(0, options.jitter ?? 0.3));
  }

  get attempts(): number {
    return this.attempt;
  }

  /** Milliseconds to wait before the next attempt, or `null` to stop trying. */
  next(close: CloseInfo): number | null {
    if (close.expected || FINAL_CODES.has(close.code)) return null;
    if (this.attempt >= this.maxAttempts) return null;
    const exp = Math.min(this.max, this.base * 2 ** this.attempt);
    this.attempt += 1;
    return Math.round(exp * (1 - this.jitter) + exp * this.jitter * this.random());
  }

  /** A connection came up and the session is live again. */
  reset(): void {
    this.attempt = 0;
  }
}

/** The latest single-use resume token hark handed out (`hark.resume_token`), while valid. */
export class ResumeToken {
  private token: string | null = null;
  private expiresAt = 0;

  constructor(private readonly now: () => number = () => Date.now() / 1000) {}

  update(token: string, expiresAt: number): void {
    this.token = token;
    this.expiresAt = expiresAt;
  }

  /** Take the token for one `hark.resume` (tokens are single use); `null` when none or expired. */
  take(): string | null {
    const token = this.token;
    this.token = null;
    if (token === null || (this.expiresAt > 0 && this.now() >= this.expiresAt)) return null;
    return token;
  }

  get available(): boolean {
    return this.token !== null && (this.expiresAt === 0 || this.now() < this.expiresAt);
  }
}
