// The Realtime events hark sends (GA names, plus hark's own hark.* events) and the few a client
// sends. Types cover the fields clients read; unknown events still parse, as `UnknownServerEvent`.
/** Parse one text frame / data-channel message; `null` for anything that is not an event. */
export function parseServerEvent(data) {
    if (typeof data !== "string")
        return null;
    let value;
    try {
        value = JSON.parse(data);
    }
    catch {
        return null;
    }
    if (value === null || typeof value !== "object" || Array.isArray(value))
        return null;
    const type = value.type;
    return typeof type === "string" ? value : null;
}
/** Narrow an event to a known type: `if (is(e, "hark.latency")) e.stt_ms`. */
export function is(event, type) {
    return event.type === type;
}
let counter = 0;
/** A unique client event id. */
export function eventId() {
    counter += 1;
    return `evt_hark_${Date.now().toString(36)}_${counter}`;
}
/** Base64 of bytes (chunked, so large buffers do not overflow the call stack). */
export function toBase64(buffer) {
    const bytes = buffer instanceof Uint8Array ? buffer : new Uint8Array(buffer);
    let binary = "";
    for (let i = 0; i < bytes.length; i += 0x8000) {
        binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    }
    return btoa(binary);
}
/** Little-endian PCM16 from base64, as Int16 samples. */
export function pcm16FromBase64(b64) {
    const binary = atob(b64);
    const n = binary.length >> 1;
    const out = new Int16Array(n);
    for (let i = 0, j = 0; i < n; i++, j += 2) {
        const v = binary.charCodeAt(j) | (binary.charCodeAt(j + 1) << 8);
        out[i] = v >= 0x8000 ? v - 0x10000 : v;
    }
    return out;
}
/** The session.update a voice client sends first: PCM16 at `rate` both ways, server VAD. */
export function voiceSessionUpdate(rate = 24000, extra = {}) {
    return {
        type: "session.update",
        session: {
            type: "realtime",
            output_modalities: ["audio"],
            audio: {
                input: { format: { type: "audio/pcm", rate }, turn_detection: { type: "server_vad" } },
                output: { format: { type: "audio/pcm", rate } },
            },
            ...extra,
        },
    };
}
