"""pks-sip-proxy benchmark: pks against Kamailio 5.6 on the same tables and the same SIPp load.

Run through ``scripts/bench [--quick]``. Scenario 1 drives SIPp calls through each target
(pks, Kamailio, and SIPp caller straight to SIPp callee as the machine's ceiling) and measures
maximum sustained calls per second, INVITE→200 latency, proxy CPU per call and proxy memory
with N calls open. Scenario 2 measures routing-lookup cost as the tables grow; scenario 3 the
cost of a stranger's flood while legitimate calls go through. Results land in
``bench/results/`` as Markdown, PNG and JSON. Reports, never pass/fail.
"""
