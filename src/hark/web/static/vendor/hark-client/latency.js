/** RMS above which a microphone chunk counts as voice (about -40 dBFS). */
export const VOICE_RMS = 0.01;
export class LatencyTracker {
    voiceRms;
    lastVoiceAt = null;
    endOfSpeech = null;
    turn = null;
    byResponse = new Map();
    constructor(voiceRms = VOICE_RMS) {
        this.voiceRms = voiceRms;
    }
    /** A microphone chunk of level `rms` ended at `at` (ms). */
    level(rms, at) {
        if (rms >= this.voiceRms)
            this.lastVoiceAt = at;
    }
    speechStarted() {
        this.endOfSpeech = null;
        this.turn = null;
    }
    /** The server's VAD said the speech stopped (it decides after a silence; the voice ended earlier). */
    speechStopped(at) {
        this.endOfSpeech = this.lastVoiceAt !== null && this.lastVoiceAt <= at ? this.lastVoiceAt : at;
        this.turn = { responseId: null, heardMs: null, server: null };
    }
    /** A reply is waiting to be heard. */
    get waiting() {
        return this.turn !== null && this.turn.heardMs === null && this.endOfSpeech !== null;
    }
    responseCreated(responseId) {
        if (this.turn && this.turn.responseId === null) {
            this.turn.responseId = responseId;
            this.byResponse.set(responseId, this.turn);
            if (this.byResponse.size > 64)
                this.byResponse.delete(this.byResponse.keys().next().value);
        }
    }
    /** The first reply sample reached the speaker at `at`; returns the turn's figures once. */
    played(at) {
        if (!this.waiting || !this.turn || this.endOfSpeech === null)
            return null;
        this.turn.heardMs = Math.max(0, at - this.endOfSpeech);
        return { ...this.turn };
    }
    /** hark.latency arrived; returns the turn's figures with it. */
    server(responseId, figures) {
        const turn = (responseId && this.byResponse.get(responseId)) || { responseId: responseId ?? null, heardMs: null, server: null };
        turn.server = figures;
        return { ...turn };
    }
}
