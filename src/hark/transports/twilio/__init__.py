"""Phone calls over Twilio Media Streams: a thin adapter in front of the conversation.

``routes`` (the webhook and stream endpoints, ``PhoneLine``), ``session`` (one call, on the shared
socket skeleton and outbox), and pure parts: ``protocol`` (the wire messages), ``mulaw``
(G.711), ``signature`` (X-Twilio-Signature), ``playback`` (echoed marks → heard audio), ``dtmf``
(keypad digits), ``greeting`` (the fixed greeting's kept audio).
"""
