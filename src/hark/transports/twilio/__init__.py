"""Phone calls over Twilio Media Streams: a thin adapter in front of the conversation.

``routes`` (webhook and stream endpoints), ``session`` (one call), and pure parts: ``protocol``
(the wire messages), ``mulaw`` (G.711), ``signature`` (X-Twilio-Signature), ``playback`` (marks
→ heard audio), ``dtmf`` (keypad digits), ``outbox`` (the bounded send queue).
"""
