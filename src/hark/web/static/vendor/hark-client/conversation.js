// The conversation as a person sees it, folded from server events: state, transcripts, latency.
// Pure (no DOM, no timers), so the React hook and the tests share it.
import { is } from "./events.js";
export const initialConversation = {
    state: "IDLE",
    transcripts: [],
    latency: [],
    llmMode: null,
    llmMessage: null,
    lastError: null,
};
const STATES = {
    idle: "IDLE",
    listening: "LISTENING",
    thinking: "THINKING",
    speaking: "SPEAKING",
};
const MAX_ENTRIES = 200;
function upsert(list, entry) {
    const i = list.findIndex((e) => e.id === entry.id);
    if (i < 0) {
        const next = [...list, { text: "", final: false, ...entry }];
        return next.length > MAX_ENTRIES ? next.slice(next.length - MAX_ENTRIES) : next;
    }
    const next = list.slice();
    next[i] = { ...list[i], ...entry };
    return next;
}
function textOf(list, id) {
    return list.find((e) => e.id === id)?.text ?? "";
}
/** Fold one server event into the snapshot (a new object when something changed). */
export function reduceConversation(s, event) {
    if (is(event, "hark.state")) {
        const state = STATES[event.state];
        return state && state !== s.state ? { ...s, state } : s;
    }
    if (is(event, "hark.llm_status"))
        return { ...s, llmMode: event.mode, llmMessage: event.message ?? null };
    if (is(event, "input_audio_buffer.speech_started")) {
        return { ...s, transcripts: upsert(s.transcripts, { id: event.item_id, role: "user" }) };
    }
    if (is(event, "conversation.item.input_audio_transcription.delta")) {
        const text = typeof event.transcript === "string" ? event.transcript : textOf(s.transcripts, event.item_id) + (event.delta ?? "");
        return { ...s, transcripts: upsert(s.transcripts, { id: event.item_id, role: "user", text }) };
    }
    if (is(event, "conversation.item.input_audio_transcription.completed")) {
        return { ...s, transcripts: upsert(s.transcripts, { id: event.item_id, role: "user", text: event.transcript, final: true }) };
    }
    if (is(event, "response.output_audio_transcript.delta") || is(event, "response.output_text.delta")) {
        const text = textOf(s.transcripts, event.item_id) + event.delta;
        return { ...s, transcripts: upsert(s.transcripts, { id: event.item_id, role: "assistant", text }) };
    }
    if (is(event, "response.output_audio_transcript.done")) {
        return { ...s, transcripts: upsert(s.transcripts, { id: event.item_id, role: "assistant", text: event.transcript, final: true }) };
    }
    if (is(event, "response.output_text.done")) {
        return { ...s, transcripts: upsert(s.transcripts, { id: event.item_id, role: "assistant", text: event.text, final: true }) };
    }
    if (is(event, "conversation.item.truncated")) {
        if (!s.transcripts.some((e) => e.id === event.item_id))
            return s;
        return {
            ...s,
            transcripts: upsert(s.transcripts, { id: event.item_id, role: "assistant", interrupted: true, heardMs: event.audio_end_ms }),
        };
    }
    if (is(event, "error"))
        return { ...s, lastError: event.error.message ?? "The server reported an error." };
    return s;
}
/** Record a turn's latency (client figure, server figure, or both), replacing the same reply's. */
export function withLatency(s, turn) {
    const i = turn.responseId ? s.latency.findIndex((t) => t.responseId === turn.responseId) : -1;
    const latency = s.latency.slice();
    if (i >= 0)
        latency[i] = { ...latency[i], ...turn, heardMs: turn.heardMs ?? latency[i].heardMs, server: turn.server ?? latency[i].server };
    else
        latency.push(turn);
    return { ...s, latency: latency.slice(-50) };
}
