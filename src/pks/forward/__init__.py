"""Step ⑥: RFC 3261 §16 stateful relaying helpers (sans-IO), used by ``pks.proxy``.

``request`` writes the forwarded request (Max-Forwards, our Via, Record-Route), ``hop`` writes
the hop-by-hop ACK and CANCEL, ``response`` picks the best final response (§16.7), ``dialog``
decides where an in-dialog request goes (loose routing, §16.4/§16.12), ``nat`` holds the
RFC 3581 and Contact-alias handling for peers behind NAT.
"""
