"""pks-sip-proxy: a SIP interconnection proxy between customers' IP-PBXs and carriers.

Data path (one request, left to right)::

  ① transport ─► ② sip (parse) ─► ③ sanity ─► ④ transaction ─► ⑤ route ─► ⑥ forward ─► ① transport
                                                                 a authorize (address)
                                                                 b lookup    (dialplan)
                                                                 c dispatch  (dispatcher)

Beside the path, never on it: db (load) → route.snapshot swap, admin (API, RPC), cli.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
