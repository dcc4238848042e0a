"""Beside the data path: the instance's figures for Prometheus (``GET /metrics``).

The core only counts — cheap increments of ``Proxy.stats`` keys made once (requests by
method, responses by class, drops by reason), per-call tallies by peer tag and set
(:class:`pks.forward.calls.Tally`) — and everything else is read when Prometheus scrapes:

* :mod:`pks.metrics.lag` — a small periodic task measuring how late the event loop runs its
  timers, one per process;
* :mod:`pks.metrics.figures` — plain values (no ``prometheus_client``): what each process
  reports (worker processes answer worker 0 with it) and their sum, one view of the
  instance; the reload log the server keeps;
* :mod:`pks.metrics.exposition` — a ``prometheus_client`` collector turning those figures
  into metric families, and the text format served by the admin API.

Every label set is bounded by the tables or by fixed lists: never a Call-ID or a number.
docs/metrics.md lists the series.
"""
