// Carriers of Realtime events: a WebSocket, or a WebRTC call (OpenAI's flow) whose data channel
// "oai-events" carries the same events and whose audio travels as tracks.
import { HarkError, tokenRefused, unreachable } from "./errors.js";
import { eventId, parseServerEvent, toBase64 } from "./events.js";
import { hostOf } from "./token.js";
/** Past this many bytes waiting in the socket, microphone audio is dropped rather than queued. */
const MAX_BUFFERED_BYTES = 1 << 20;
/** `ws(s)://host/v1/realtime?model=hark[&hark_events=1]` for an http(s) base URL. */
export function realtimeUrl(baseUrl, harkEvents = true) {
    const url = new URL("/v1/realtime", baseUrl);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    url.searchParams.set("model", "hark");
    if (harkEvents)
        url.searchParams.set("hark_events", "1");
    return url.toString();
}
/** `http(s)://host/v1/realtime/calls[?hark_events=1]`. */
export function callsUrl(baseUrl, harkEvents = true) {
    const url = new URL("/v1/realtime/calls", baseUrl);
    if (harkEvents)
        url.searchParams.set("hark_events", "1");
    return url.toString();
}
/**
 * Subprotocols for a WebSocket: the credential rides here, never in the URL. Without one, none
 * are offered: Chrome fails a handshake whose server picks no subprotocol from those offered.
 */
export function webSocketProtocols(token) {
    return token ? ["realtime", `openai-insecure-api-key.${token}`] : [];
}
function withId(event) {
    return event.event_id ? event : { event_id: eventId(), ...event };
}
export class WebSocketTransport {
    ws;
    kind = "websocket";
    droppedAudioBytes = 0;
    closing = false;
    constructor(ws) {
        this.ws = ws;
    }
    /** Resolves once the socket is open; rejects with `server_unreachable` when it cannot open. */
    static connect(url, token, handlers) {
        return new Promise((resolve, reject) => {
            let opened = false;
            const ws = new WebSocket(url, webSocketProtocols(token));
            const transport = new WebSocketTransport(ws);
            ws.onopen = () => {
                opened = true;
                resolve(transport);
            };
            ws.onmessage = (message) => {
                const event = parseServerEvent(message.data);
                if (event)
                    handlers.onEvent(event);
            };
            ws.onerror = () => {
                if (!opened)
                    reject(unreachable(hostOf(url)));
            };
            ws.onclose = (close) => {
                if (!opened) {
                    reject(unreachable(hostOf(url)));
                    return;
                }
                handlers.onClose({ code: close.code, reason: close.reason, expected: transport.closing });
            };
        });
    }
    get open() {
        return this.ws.readyState === WebSocket.OPEN;
    }
    send(event) {
        if (!this.open)
            return false;
        this.ws.send(JSON.stringify(withId(event)));
        return true;
    }
    /** Append PCM16 microphone audio (as `input_audio_buffer.append`). */
    sendAudio(pcm) {
        if (!this.open)
            return false;
        if (this.ws.bufferedAmount > MAX_BUFFERED_BYTES) {
            this.droppedAudioBytes += pcm.byteLength;
            return false;
        }
        const bytes = new Uint8Array(pcm.buffer, pcm.byteOffset, pcm.byteLength);
        return this.send({ type: "input_audio_buffer.append", audio: toBase64(bytes) });
    }
    close() {
        this.closing = true;
        if (this.ws.readyState <= WebSocket.OPEN)
            this.ws.close(1000, "client stopped");
    }
}
/** The server does not offer WebRTC (404/405), or the call could not be set up: use the WebSocket. */
export class WebRtcUnavailable extends Error {
    constructor(message) {
        super(message);
        this.name = "WebRtcUnavailable";
    }
}
export class WebRtcTransport {
    pc;
    channel;
    remoteStream;
    callUrl;
    kind = "webrtc";
    closing = false;
    closed = false;
    constructor(pc, channel, 
    /** Reply audio from the server. */
    remoteStream, 
    /** `Location` of the call, for hanging up. */
    callUrl) {
        this.pc = pc;
        this.channel = channel;
        this.remoteStream = remoteStream;
        this.callUrl = callUrl;
    }
    /**
     * OpenAI's flow: the SDP offer POSTed to /v1/realtime/calls (application/sdp, Bearer token),
     * the answer in a 201; events on the "oai-events" channel. Rejects with `WebRtcUnavailable`
     * when the caller should fall back to a WebSocket, or `token_refused` when the credential is bad.
     */
    static async connect(url, token, micTrack, handlers, options = {}) {
        if (typeof RTCPeerConnection === "undefined")
            throw new WebRtcUnavailable("This browser has no WebRTC.");
        const pc = new RTCPeerConnection({ iceServers: options.iceServers ?? [] });
        try {
            const remote = new MediaStream();
            const gotTrack = new Promise((resolve) => {
                pc.ontrack = (e) => {
                    remote.addTrack(e.track);
                    resolve();
                };
            });
            pc.addTrack(micTrack, new MediaStream([micTrack]));
            const channel = pc.createDataChannel("oai-events");
            const offer = await pc.createOffer();
            await pc.setLocalDescription(offer);
            const headers = { "Content-Type": "application/sdp" };
            if (token)
                headers["Authorization"] = `Bearer ${token}`;
            let response;
            try {
                response = await (options.fetch ?? fetch)(url, { method: "POST", body: offer.sdp ?? "", headers });
            }
            catch {
                // Unreachable, or refused by CORS (a server without WebRTC): the WebSocket says which.
                throw new WebRtcUnavailable(`No answer to the offer from ${hostOf(url)}.`);
            }
            if (response.status === 401 || response.status === 403)
                throw tokenRefused(response.status);
            if (response.status !== 201 && response.status !== 200) {
                throw new WebRtcUnavailable(`The server answered the offer with HTTP ${response.status}.`);
            }
            const location = response.headers.get("Location");
            await pc.setRemoteDescription({ type: "answer", sdp: await response.text() });
            const transport = new WebRtcTransport(pc, channel, remote, location ? new URL(location, url).toString() : null);
            channel.onmessage = (message) => {
                const event = parseServerEvent(message.data);
                if (event)
                    handlers.onEvent(event);
            };
            await openWithin(channel, options.openTimeoutMs ?? 10_000);
            await Promise.race([gotTrack, new Promise((r) => setTimeout(r, 2000))]);
            const lost = (reason) => transport.finish(handlers, 1006, reason);
            channel.onclose = () => lost("data channel closed");
            pc.onconnectionstatechange = () => {
                if (pc.connectionState === "failed" || pc.connectionState === "closed")
                    lost(`peer ${pc.connectionState}`);
            };
            return transport;
        }
        catch (err) {
            pc.close();
            if (err instanceof HarkError || err instanceof WebRtcUnavailable)
                throw err;
            throw new WebRtcUnavailable(`WebRTC setup failed: ${err?.message ?? String(err)}`);
        }
    }
    get open() {
        return this.channel.readyState === "open";
    }
    send(event) {
        if (!this.open)
            return false;
        this.channel.send(JSON.stringify(withId(event)));
        return true;
    }
    finish(handlers, code, reason) {
        if (this.closed)
            return;
        this.closed = true;
        this.pc.close();
        handlers.onClose({ code: this.closing ? 1000 : code, reason, expected: this.closing });
    }
    close() {
        this.closing = true;
        try {
            this.channel.close();
        }
        catch {
            /* already closed */
        }
        this.pc.close();
    }
}
function openWithin(channel, ms) {
    if (channel.readyState === "open")
        return Promise.resolve();
    return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new WebRtcUnavailable("The data channel did not open.")), ms);
        channel.onopen = () => {
            clearTimeout(timer);
            resolve();
        };
    });
}
