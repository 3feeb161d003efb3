"""WebRTC calls as OpenAI's Realtime API makes them: ``POST /v1/realtime/calls`` with an SDP
offer, Opus in and out through aiortc, the Realtime events on the ``oai-events`` data channel
through the WebSocket endpoint's own codec and session, and a sideband WebSocket
(``/v1/realtime?call_id=``) for an app server.

- ``sdp``: the HTTP edge's pure part (content types, offer checks, OpenAI's error body);
- ``media``: the outbound track paced by the RTP clock (and what it played, the echo
  canceller's reference), and the inbound audio's downmix;
- ``opus``: Opus coded in the event loop both ways (aiortc's own path costs a thread hop and a
  jitter buffer's delay per packet);
- ``channel``: the data channel (and sideband sockets) shaped as the WebSocket the session reads;
- ``session``: the Realtime session with reply audio routed to the track;
- ``call``: one peer connection, its bounded set-up and its teardown;
- ``hosts``: which addresses its host candidates are on (loopback where nothing else is);
- ``routes``: the HTTP routes and the calls in progress.
"""
