"""Beside the data path: gateway host names → addresses (RFC 3263), never blocking the loop.

``cache`` is the sans-IO part the proxy reads on every branch to a named gateway: resolved
addresses in failover order, valid until their TTL. ``resolve`` (I/O edge) asks the DNS with
dnspython's asyncio resolver — SRV then A/AAAA — and ``refresh`` keeps the cache warm for the
names of the live snapshot: primed before a snapshot goes live, refreshed before TTLs run
out, retried while a name fails. A name without an answer makes its gateway fail over like a
dead one.
"""
