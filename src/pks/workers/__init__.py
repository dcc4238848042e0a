"""Several worker processes for one pks instance (``PKS_WORKERS``), beside the data path.

- ``supervisor``: ``pks run`` as a supervisor — starts, restarts and stops the workers;
- ``shared``: the shared memory store (round-robin state, gateway flags and loads, per-peer
  call counts) and the adapters plugging it into routing, health and call limits;
- ``handoff``: which worker owns a message (Via branch, Call-ID) and the channel between
  workers (handed-off messages, control queries);
- ``node``: a worker's glue between its :class:`pks.server.Server` and the others.

See docs/workers.md.
"""
