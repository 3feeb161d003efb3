// Microphone capture and reply playback on one AudioContext, through the worklets in worklets.ts.
// Browser only; everything here is created inside start(), never at import time.
import { insecureContext, HarkError, microphoneError } from "./errors.js";
import { CAPTURE_PROCESSOR, captureWorkletUrl, PLAYBACK_PROCESSOR, playbackWorkletUrl } from "./worklets.js";
/** Ask for the microphone (mono, with the browser's voice processing); rejects with a HarkError. */
export async function requestMicrophone(constraints = {}) {
    if (typeof window === "undefined" || !window.isSecureContext || !navigator.mediaDevices?.getUserMedia) {
        throw insecureContext();
    }
    try {
        return await navigator.mediaDevices.getUserMedia({
            audio: {
                echoCancellation: true,
                noiseSuppression: true,
                autoGainControl: true,
                channelCount: { ideal: 1 },
                ...constraints,
            },
            video: false,
        });
    }
    catch (err) {
        throw microphoneError(err);
    }
}
export class AudioIO {
    handlers;
    rate;
    chunkMs;
    constraints;
    worklets;
    ctx = null;
    stream = null;
    nodes = [];
    capture = null;
    player = null;
    remoteGain = null;
    remoteAnalyser = null;
    remoteElement = null;
    playedSamples = new Map();
    enqueuedSamples = new Map();
    lastItem = null;
    flushSeq = 0;
    pendingFlush = new Map();
    closed = false;
    playing = false;
    queuedSamples = 0;
    constructor(handlers, options = {}) {
        this.handlers = handlers;
        this.rate = options.rate ?? 24000;
        this.chunkMs = options.chunkMs ?? 40;
        this.constraints = options.constraints ?? {};
        this.worklets = options.worklets;
    }
    /**
     * Call from a user gesture (a click): the AudioContext is created synchronously so autoplay
     * policies let it run. Rejects with a HarkError a person can act on.
     */
    async start() {
        if (typeof window === "undefined" || !window.isSecureContext || !navigator.mediaDevices?.getUserMedia) {
            throw insecureContext();
        }
        if (typeof AudioWorkletNode === "undefined") {
            throw new HarkError("unsupported_browser", "This browser does not support AudioWorklet; use a current Chrome, Firefox or Safari.");
        }
        const ctx = new AudioContext({ latencyHint: "interactive" });
        this.ctx = ctx;
        const resumed = ctx.resume();
        try {
            const streamPromise = requestMicrophone(this.constraints);
            const modules = Promise.all([
                ctx.audioWorklet.addModule(this.worklets?.capture ?? captureWorkletUrl()),
                ctx.audioWorklet.addModule(this.worklets?.playback ?? playbackWorkletUrl()),
            ]);
            let stream;
            try {
                stream = await streamPromise;
            }
            catch (err) {
                modules.catch(() => undefined);
                throw err;
            }
            this.stream = stream;
            await modules;
            if (this.closed)
                throw new HarkError("connection_lost", "Stopped.");
            const player = new AudioWorkletNode(ctx, PLAYBACK_PROCESSOR, {
                numberOfInputs: 0,
                numberOfOutputs: 1,
                outputChannelCount: [1],
                processorOptions: { sourceRate: this.rate },
            });
            player.port.onmessage = (e) => this.onPlayerMessage(e.data);
            player.connect(ctx.destination);
            this.player = player;
            const source = ctx.createMediaStreamSource(stream);
            const capture = new AudioWorkletNode(ctx, CAPTURE_PROCESSOR, {
                numberOfInputs: 1,
                numberOfOutputs: 1,
                outputChannelCount: [1],
                channelCount: 1,
                channelCountMode: "explicit",
                channelInterpretation: "speakers",
                processorOptions: { targetRate: this.rate, chunkMs: this.chunkMs },
            });
            capture.port.onmessage = (e) => {
                const msg = e.data;
                if (msg?.type === "chunk" && msg.pcm)
                    this.handlers.onChunk(new Int16Array(msg.pcm), msg.rms ?? 0);
            };
            // The capture node outputs silence; a muted sink keeps it pulled in every browser.
            const sink = ctx.createGain();
            sink.gain.value = 0;
            source.connect(capture);
            capture.connect(sink);
            sink.connect(ctx.destination);
            this.capture = capture;
            this.nodes.push(source, capture, sink, player);
            await resumed;
            if (ctx.state !== "running")
                await ctx.resume();
        }
        catch (err) {
            await this.stop();
            throw err instanceof HarkError ? err : microphoneError(err);
        }
    }
    /** The microphone's audio track (sent as-is over WebRTC). */
    get micTrack() {
        return this.stream?.getAudioTracks()[0] ?? null;
    }
    get sampleRate() {
        return this.ctx?.sampleRate ?? 0;
    }
    /** Seconds between a sample leaving the worklet and reaching the speaker, as the browser reports it. */
    get outputLatencyS() {
        const ctx = this.ctx;
        if (!ctx)
            return 0;
        return (ctx.outputLatency || 0) + (ctx.baseLatency || 0);
    }
    // ---- playback of PCM (WebSocket) ------------------------------------------------------------
    enqueue(itemId, pcm) {
        if (!this.player)
            return;
        const samples = pcm.length;
        this.enqueuedSamples.set(itemId, (this.enqueuedSamples.get(itemId) ?? 0) + samples);
        this.queuedSamples += samples;
        const buffer = pcm.byteOffset === 0 && pcm.byteLength === pcm.buffer.byteLength ? pcm.buffer : pcm.slice().buffer;
        this.player.port.postMessage({ type: "push", itemId, pcm: buffer }, [buffer]);
    }
    playedMs(itemId) {
        return ((this.playedSamples.get(itemId) ?? 0) * 1000) / this.rate;
    }
    enqueuedMs(itemId) {
        return ((this.enqueuedSamples.get(itemId) ?? 0) * 1000) / this.rate;
    }
    /** Reply audio playing or waiting in the queue. */
    get busy() {
        return this.playing || this.queuedSamples > 0;
    }
    /** Drop all queued audio at once; resolves with what the current item had played. */
    flush() {
        this.queuedSamples = 0;
        const player = this.player;
        if (!player)
            return Promise.resolve({ item: null, ms: 0 });
        const id = ++this.flushSeq;
        return new Promise((resolve) => {
            const timer = setTimeout(() => {
                // The player did not answer (a suspended context): use the last progress report.
                this.pendingFlush.delete(id);
                this.playing = false;
                resolve({ item: this.lastItem, ms: this.lastItem ? this.playedMs(this.lastItem) : 0 });
            }, 250);
            this.pendingFlush.set(id, {
                resolve: (r) => {
                    clearTimeout(timer);
                    resolve(r);
                },
            });
            player.port.postMessage({ type: "flush", id });
        });
    }
    onPlayerMessage(msg) {
        if (!msg)
            return;
        if (msg.item !== null && msg.item !== undefined) {
            this.playedSamples.set(msg.item, msg.samples ?? 0);
            this.lastItem = msg.item;
        }
        if (msg.type === "progress") {
            this.playing = !!msg.playing;
            this.queuedSamples = msg.queuedSamples ?? 0;
        }
        else if (msg.type === "flushed") {
            this.playing = false;
            const waiter = this.pendingFlush.get(msg.id ?? -1);
            if (waiter) {
                this.pendingFlush.delete(msg.id ?? -1);
                waiter.resolve({ item: msg.item ?? null, ms: ((msg.samples ?? 0) * 1000) / this.rate });
            }
        }
        const item = msg.item ?? null;
        this.handlers.onPlayback({ item, ms: item ? this.playedMs(item) : 0, playing: this.playing });
    }
    // ---- playback of a remote track (WebRTC) -----------------------------------------------------
    /** Play the server's audio track; an analyser reports when sound is actually coming out. */
    attachRemote(stream) {
        const ctx = this.ctx;
        if (!ctx)
            return;
        // Chrome only pulls a remote WebRTC track into Web Audio while a media element holds it.
        const element = new Audio();
        element.muted = true;
        element.srcObject = stream;
        element.play().catch(() => undefined);
        this.remoteElement = element;
        const source = ctx.createMediaStreamSource(stream);
        const gain = ctx.createGain();
        const analyser = ctx.createAnalyser();
        analyser.fftSize = 512;
        source.connect(gain);
        gain.connect(analyser);
        analyser.connect(ctx.destination);
        this.remoteGain = gain;
        this.remoteAnalyser = analyser;
        this.nodes.push(source, gain, analyser);
    }
    /** RMS (0..1) of the remote audio now; 0 without a remote track. */
    remoteLevel() {
        const analyser = this.remoteAnalyser;
        if (!analyser)
            return 0;
        const data = new Float32Array(analyser.fftSize);
        analyser.getFloatTimeDomainData(data);
        let sum = 0;
        for (const v of data)
            sum += v * v;
        return Math.sqrt(sum / data.length);
    }
    /** Silence (or restore) the remote track at once: barge-in over WebRTC. */
    muteRemote(muted) {
        const gain = this.remoteGain;
        if (gain && this.ctx)
            gain.gain.setValueAtTime(muted ? 0 : 1, this.ctx.currentTime);
    }
    get remoteMuted() {
        return this.remoteGain ? this.remoteGain.gain.value === 0 : false;
    }
    // ---- teardown -------------------------------------------------------------------------------
    /** Release everything: tracks stopped, nodes disconnected, the context closed. */
    async stop() {
        this.closed = true;
        // 1. Answer anyone waiting on a flush.
        for (const waiter of this.pendingFlush.values())
            waiter.resolve({ item: null, ms: 0 });
        this.pendingFlush.clear();
        // 2. Stop the worklets and unhook every node.
        if (this.capture) {
            this.capture.port.postMessage({ type: "stop" });
            this.capture.port.onmessage = null;
        }
        if (this.player)
            this.player.port.onmessage = null;
        for (const node of this.nodes) {
            try {
                node.disconnect();
            }
            catch {
                /* already disconnected */
            }
        }
        this.nodes = [];
        // 3. Release the microphone and the remote element.
        for (const track of this.stream?.getTracks() ?? [])
            track.stop();
        if (this.remoteElement) {
            this.remoteElement.pause();
            this.remoteElement.srcObject = null;
        }
        // 4. Close the context.
        const ctx = this.ctx;
        this.ctx = this.stream = this.capture = this.player = null;
        this.remoteGain = this.remoteAnalyser = null;
        this.remoteElement = null;
        this.playing = false;
        this.queuedSamples = 0;
        if (ctx && ctx.state !== "closed") {
            try {
                await ctx.close();
            }
            catch {
                /* closing twice is harmless */
            }
        }
    }
}
