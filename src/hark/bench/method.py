"""How the figures are measured: the Method section of docs/benchmarks.md, written by each run."""

METHOD = """
## Method

All figures are measured against a real `hark serve` process (a subprocess, started for each
scenario) driven over the real WebSocket by a client that streams 20 ms PCM frames at real-time
pace, as a microphone would: queued speech when there is some, silence otherwise. The speech is
espeak-ng saying "What is the weather like today?" (1.6 s), trimmed to the audible samples;
the Silero VAD is checked to hear it before a run. The client timestamps every frame it sends and
every message it receives on its monotonic clock. Overhead and capacity use the same wire format
for both frameworks: raw PCM16 in binary WebSocket frames, both ways. hark is driven over its
Realtime endpoint with `?audio=binary` (binary frames in, reply audio as binary frames out; its
other events stay JSON), Pipecat through a raw-PCM serializer. Barge-in and local voice-to-voice
use hark's default wire (base64 PCM in JSON events), as the OpenAI SDK and the web page do.
Except in capacity, the client offers permessage-deflate as those clients do; each server answers
as it ships: Pipecat's uvicorn accepts it, hark declines it unless `server.websocket_compression`
is on (since speed-work entry 30; before, hark's frames were deflated too).

**Fixed-delay fakes** (`hark.bench.fakes`, provider kind `scripted`): STT returns its text 0 or
150 ms after it is called (half the turns each); the LLM streams a two-sentence reply word by
word, the first token 200 ms after the call, then one every 20 ms; TTS delivers a sentence's
audio 100 ms after it is called. Workers are off (`HARK_WORKERS_ENABLED=false`) and the turn ends
after 300 ms of silence (`HARK_VAD_END_SILENCE_MS=300`). For scenarios 1 and 3 hark's speculation
is off (`HARK_CONVERSATION_SPECULATIVE_TRANSCRIPT=false`, `..._REPLY=false`): by default hark
transcribes and starts the reply at the first 64 ms of silence, so the fakes' delays run during
the end-of-turn wait and the formula below would subtract time hark never spent. Overhead is
measured without it, like for like with Pipecat (which does not speculate); a third run with
hark's defaults gives the voice-to-voice a user gets (`scripted_voice_to_voice_ms`).

**1. Overhead per turn.** `overhead = voice-to-voice − end-of-turn wait − scripted delays`, per
turn, where

- voice-to-voice = first reply audio frame received − the frame holding the last audible
  sample sent;
- end-of-turn wait = the frame holding the last sample of the VAD chunk on which the server
  ended the turn sent − the same speech-end frame. hark reports where the trailing silence began
  (`speech_stopped.audio_end_ms`); the turn ends on the 9th silent 32 ms chunk after it
  (`round(300 / 32)`), and that chunk's last sample is in a known client frame. Until then no
  server could know the turn was over: this wait is the VAD's (Silero's fade after the last
  syllable plus the configured silence), not the framework's;
- scripted delays = STT (0 or 150 ms) + LLM to the token that lets a sentence splitter cut the
  first sentence (200 + 6 × 20 ms: "…today." is known to end a sentence only when " You"
  arrives; hark's and Pipecat's splitters both wait for it) + TTS 100 ms = 420 or 570 ms.

What is left is the framework's: WebSocket both ways, the input resampler's buffering (24 → 16
kHz; hark's causal FIR holds none back, so its part is 0), VAD inference on the last chunk, turn
logic, the hand-offs between stages, the first audio chunk's encoding. `resampler_hold_ms` in the
JSON splits out the resampler's part; `server_overhead_ms` is the same from hark's own
`hark.latency` event (end of turn detected → first audio sent, less the scripted delays: no
transport, no VAD). Several sessions (8; 5 in `--quick`) run at once so turns gather faster;
each turn is timed on its own, and the client's lateness in sending frames is recorded as a check.
The scenario runs three times (hark, hark with speculation and Pipecat in turn within each run,
so all three see the same load); each figure is the median of the three runs' figures, and the
spread is the smallest and largest of them.

**What the spikes are.** Every hark server the bench starts runs under a probe
(`python -m hark.bench.probe`): `gc.callbacks` time each collection, and a thread asks the event
loop every 10 ms to run a callback (`call_soon_threadsafe`) and records how late it ran (the
loop's lag: a long callback, a GC pause, or the loop waking late from its selector). Both are on
the machine's monotonic clock, so they are set against each turn's overhead window (decision
frame sent → first reply audio received): of the slowest 5 % of turns (1 % per capacity step),
how many overlapped a GC pause of ≥ 1 ms, how many only a loop stall of ≥ 5 ms, and how many
neither (then it was outside the event loop: the VAD thread's round trip, the client, the
kernel). Each capacity step also splits the server's CPU by thread (event loop, the Silero
thread, others).

**2. Pipecat.** `pipecat-ai` 1.x with the same fakes as Pipecat services (`SegmentedSTTService`,
`LLMService`, `TTSService` subclasses), `VADProcessor` with Silero (threshold 0.5, start 96 ms,
stop 300 ms, no volume gate), the universal context aggregators with
`SpeechTimeoutUserTurnStopStrategy(user_speech_timeout=0)` (the turn ends when the VAD stopped
and the final transcript is in, as in hark), `FastAPIWebsocketTransport` with a raw-PCM
serializer, RTVI off, logging at WARNING (as hark's). Its VAD reports the chunk it stopped on, so
the same arithmetic applies. Same run, same client, same turns; the ratio is hark's p50 over
Pipecat's.

**3. Capacity.** One hark process pinned to core 0 (`sched_setaffinity`, as `taskset -c 0`), the
client on the other cores, raw PCM both ways (`?audio=binary`). Sessions are added in steps;
every session streams audio all the time and takes turns (speech, a ~3.7 s reply, a pause). At
each step, over a window: overhead per turn, playback underruns (reply audio arriving after the
client's playback buffer, fed in real time, ran dry), the server's CPU seconds per
session-second (utime + stime from `/proc/PID/stat`) and its resident memory (`VmRSS`); memory
per session is the growth over the idle server divided by the sessions. A step fails at
overhead p99 > 50 ms or any underrun, and only when a second window at the same step fails
too (one GC pause must not decide the figure); the ramp stops at a failed step. Steps: 25, 50,
75, 100, 125, 150, 175, 200, 250, 300, 400, 500 (`--quick`: 25, 50, 100, 150, 200, 250), each
with four seconds' settling and a 20 s window (`--quick`: 6 s). Sessions per core is the last step
that passed; the ramp runs three times on a fresh server each, and the figure is the median, with
the spread. The client does not negotiate permessage-deflate here (it cannot afford it for
hundreds of sessions on one core); browsers and the OpenAI SDKs offer it, and hark declines it
unless `server.websocket_compression` is on (`python -m hark.bench.capacity --compression
deflate` measures what accepting it costs: about 1 ms of CPU per session-second at 100). Without
an extension a frame's bytes do not depend on the frames before it, so the client has websockets
frame (and mask) each distinct payload once and writes the bytes straight to the socket: the
server gets the same frames `send()` would give it (one mask per distinct payload rather than a
fresh one per frame, which a server cannot tell). The client records its own CPU, GC pauses and
lateness in each window. If it falls behind (frame lateness p99 > 15 ms) the window is the
client's, not the server's: like a failed one it gets a second window, and if that one falls
behind too the ramp stops there and the figure is the client's limit, flagged `limited_by:
client`.

**4. Barge-in.** While a reply plays (0.3–1 s into it) the client speaks "Wait, stop." From the
frame holding the first interrupting sample: `bargein_ms` to the last reply audio frame received
(the issue's figure), `stop_signal_ms` to `input_audio_buffer.speech_started` (where a client
drops its buffered audio), `vad_ms` to the frame that completed the chunk on which the VAD
confirmed speech (96 ms of speech over the threshold), and `framework_ms` = stop signal − VAD.

**5. Local voice-to-voice.** The real engines (faster-whisper tiny.en, Piper `en_US-joe-medium`)
with the scripted LLM, one session, hark's defaults (speculative transcript and reply on), in
three configurations: the worker pool (default), in process, and the worker pool with Whisper's
full 30 s encoder window (`HARK_STT_FASTER_WHISPER_ENCODER_WINDOW_S=0`; by default a short turn
is encoded in 10 s).
Client-side, from the end of the speech to the first reply audio, so it includes the 300 ms
end-of-turn silence. The headline figure is the default configuration's.

**6. `/v1/audio/speech`.** Piper, the two-sentence reply, each `response_format`: time to the
first body byte, and real-time factor (request time / audio duration).

**7. Talking sessions (capacity with the real engines).** hark's defaults — faster-whisper
tiny.en and Piper in the worker pool (one worker per core), speculation on — with the scripted
LLM, and admission control off (`HARK_ADMISSION_MAX_CONVERSATIONS=0`, `..._MAX_WAIT_S=0`) so
the ramp can go past the point where hark would refuse. Sessions are added in steps (1, 2, 4,
6, 8, 10, 12, 16, 20, 24; `--quick`: 1, 4, 8). Every session streams 20 ms frames at real time
and speaks the question every ~7 s (uniformly 5.6–8.4 s after its previous turn began, or as
soon as the previous answer is in if that is later: people wait for an answer). After a 7 s
settling period, over a window (60 s; `--quick` 20 s): voice-to-voice per turn on the client
(last speech frame sent → first reply audio received, so the 300 ms end-of-turn silence is in
it) p50/p95, failed turns (no answer within 60 s, or not completed), sessions closed by the
server, and the work the pool shed in the window (`hark_worker_shed_total` by priority). The
**capacity** is the largest step before the first one that misses p95 ≤ 1.5 s (or fails a turn,
or loses a session); the ramp continues two steps past that miss, so the curve beyond shows how
the box degrades: partials and speculation are shed first, answers come later, nobody is
dropped. This is the number to set as `admission.max_conversations` ([deploy.md](deploy.md)).

**8. Soak** (only with `--only soak`: it takes 10 minutes). 20 sessions talking as in 7 for
600 s (`--quick`: 60 s), same server. Reported: sessions closed by the server (target 0), turns
answered and failed, voice-to-voice, resident memory of the server and its worker processes
(`VmRSS` summed; drift from the end of the first tenth of the run to the end, target < 10 %),
and `GET /health` latency polled every 200 ms from a separate thread — its p99 − p50 is the
server's event-loop lag (the bench client's own loop is busy with 20 sessions).

**9. Meetings** (`hark bench --only meetings`). Meetings of 2, 3, 4 and 5 espeak-ng voices
(`en-us`, `en+f3`, `en-us+m7`, `en-us+f4`, `en+m1`; one meeting per size in a quick run, three
in a full one), each with a one-word last turn and one turn that starts a second before the
previous one ends, streamed to `hark serve` with its default engines (CAM++ in the worker pool)
at 2x real time (quick) or real time (full). DER is frame-based (10 ms) with a 0.25 s collar
and the best mapping of labels to voices; with overlap, a frame where two voices speak counts
twice (hark gives one speaker per segment). Also the speaker-count error and the time from
`stop` to `final` per minute of audio. No recordings of real people are in the corpus.

Timing on a shared machine is noisy: other processes, CPU frequency changes and the client
sharing the cores all show up in the tails. For figures to quote, run on a quiet machine.
"""
"""How the figures are measured: the part of docs/benchmarks.md below the machine table."""
