// Per-turn latency as the person experiences it, measured in the client: from the end of their
// speech as the microphone heard it to the first reply sample played out. Pure: times come in.
import type { ServerLatency } from "./events.js";

export interface TurnLatency {
  responseId: string | null;
  /** End of speech at the microphone → first reply sample at the speaker, in ms (client clock). */
  heardMs: number | null;
  /** hark's own figures for the turn (`hark.latency`), when the server sends them. */
  server: ServerLatency | null;
}

/** RMS above which a microphone chunk counts as voice (about -40 dBFS). */
export const VOICE_RMS = 0.01;

export class LatencyTracker {
  private lastVoiceAt: number | null = null;
  private endOfSpeech: number | null = null;
  private turn: TurnLatency | null = null;
  private readonly byResponse = new Map<string, TurnLatency>();

  constructor(private readonly voiceRms = VOICE_RMS) {}

  /** A microphone chunk of level `rms` ended at `at` (ms). */
  level(rms: number, at: number): void {
    if (rms >= this.voiceRms) this.lastVoiceAt = at;
  }

  speechStarted(): void {
    this.endOfSpeech = null;
    this.turn = null;
  }

  /** The server's VAD said the speech stopped (it decides after a silence; the voice ended earlier). */
  speechStopped(at: number): void {
    this.endOfSpeech = this.lastVoiceAt !== null && this.lastVoiceAt <= at ? this.lastVoiceAt : at;
    this.turn = { responseId: null, heardMs: null, server: null };
  }

  /** A reply is waiting to be heard. */
  get waiting(): boolean {
    return this.turn !== null && this.turn.heardMs === null && this.endOfSpeech !== null;
  }

  responseCreated(responseId: string): void {
    if (this.turn && this.turn.responseId === null) {
      this.turn.responseId = responseId;
      this.byResponse.set(responseId, this.turn);
      if (this.byResponse.size > 64) this.byResponse.delete(this.byResponse.keys().next().value as string);
    }
  }

  /** The first reply sample reached the speaker at `at`; returns the turn's figures once. */
  played(at: number): TurnLatency | null {
    if (!this.waiting || !this.turn || this.endOfSpeech === null) return null;
    this.turn.heardMs = Math.max(0, at - this.endOfSpeech);
    return { ...this.turn };
  }

  /** hark.latency arrived; returns the turn's figures with it. */
  server(responseId: string | undefined, figures: ServerLatency): TurnLatency {
    const turn = (responseId && this.byResponse.get(responseId)) || { responseId: responseId ?? null, heardMs: null, server: null };
    turn.server = figures;
    return { ...turn };
  }
}
