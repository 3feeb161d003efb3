"""`hark bench`: latency, capacity and throughput figures measured against a real hark server.

Modules: ``fakes`` (fixed-delay engines, kind ``scripted``: a plugin its servers load),
``stats`` (percentiles and the overhead arithmetic), ``audio`` (the speech the bench client
sends), ``client`` (a Realtime client that timestamps every frame), ``scenarios`` (one function
per figure), ``pipecat_side`` (the same fakes in a Pipecat pipeline), ``report`` (JSON,
markdown, plots) and ``runner`` (what ``hark bench`` runs).
"""
