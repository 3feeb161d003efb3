// When to reconnect, and with what: a pure policy (no timers) and the resume token it carries.
/** Closes that another attempt cannot mend: policy violation, auth refused, bad request. */
const FINAL_CODES = new Set([1002, 1003, 1007, 1008, 1009, 4001, 4003, 4400, 4401, 4403]);
export class ReconnectPolicy {
    random;
    maxAttempts;
    base;
    max;
    jitter;
    attempt = 0;
    constructor(options = {}, random = Math.random) {
        this.random = random;
        this.maxAttempts = options.maxAttempts ?? 5;
        this.base = options.baseDelayMs ?? 500;
        this.max = options.maxDelayMs ?? 8000;
        this.jitter = Math.min(1, Math.max(0, options.jitter ?? 0.3));
    }
    get attempts() {
        return this.attempt;
    }
    /** Milliseconds to wait before the next attempt, or `null` to stop trying. */
    next(close) {
        if (close.expected || FINAL_CODES.has(close.code))
            return null;
        if (this.attempt >= this.maxAttempts)
            return null;
        const exp = Math.min(this.max, this.base * 2 ** this.attempt);
        this.attempt += 1;
        return Math.round(exp * (1 - this.jitter) + exp * this.jitter * this.random());
    }
    /** A connection came up and the session is live again. */
    reset() {
        this.attempt = 0;
    }
}
/** The latest single-use resume token hark handed out (`hark.resume_token`), while valid. */
export class ResumeToken {
    now;
    token = null;
    expiresAt = 0;
    constructor(now = () => Date.now() / 1000) {
        this.now = now;
    }
    update(token, expiresAt) {
        this.token = token;
        this.expiresAt = expiresAt;
    }
    /** Take the token for one `hark.resume` (tokens are single use); `null` when none or expired. */
    take() {
        const token = this.token;
        this.token = null;
        if (token === null || (this.expiresAt > 0 && this.now() >= this.expiresAt))
            return null;
        return token;
    }
    get available() {
        return this.token !== null && (this.expiresAt === 0 || this.now() < this.expiresAt);
    }
}
