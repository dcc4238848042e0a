"""The proxy core alone: a whole call through ``Proxy.receive`` with no sockets and no loop.

Run as ``python -m pksbench.core [--calls N] [--profile]``. It builds the snapshot of scenario
1 (the same rows as the SQLite file), then plays calls shaped like the benchmark's SIPp
scenarios (``sipp/uac.xml``, ``sipp/uas.xml``: the same headers and SDP bodies) through the
sans-IO core on a fake clock: INVITE → (100 from us) → 180 → 200 → ACK → BYE → 200, the
callee's answers built from what the proxy forwarded, as SIPp does with ``[last_*]``. Every
call's transactions are run out on the clock so that nothing accumulates.

It reports the core's cost per call and per message received (best of several rounds) — the
part of "CPU per call" that is ours, without the kernel and event-loop costs — and, with
``--profile``, the functions that cost most (cProfile). A report, not a test: use it to
compare two versions of the code on one machine.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import gc
import os
import pstats
import random
import time
from collections.abc import Iterator

from pks import heap
from pks.cdr.record import Packer, Recorder
from pks.net import Address, Inbound, Proto, Send, SocketInfo
from pks.proxy import CoreConfig, Proxy
from pks.route import build_snapshot
from pks.sip import parse
from pks.sip.memo import forget_all
from pksbench import tables
from pksbench.lookup_pks import table_rows

PROXY = SocketInfo("bench", Proto.UDP, tables.PKS_IP, tables.SIP_PORT)
CALLER = Address(tables.UAC_IP, tables.SIP_PORT)
PREFIX = "z9hG4bKpksbench"
# one Record-Route key for the recording proxy and its twin: the replayed ACK and BYE carry
# the recording's signed Record-Route (a proxy of its own key would answer them 403)
CONFIG = CoreConfig(secret=b"pksbench-replay-key-32-bytes-abc")
SEED = 5060


@contextlib.contextmanager
def same_draws(seed: int = SEED) -> Iterator[None]:
    """``os.urandom`` drawn from a generator seeded with ``seed`` meanwhile: a proxy draws
    64 unpredictable bits per branch id (``Relay.next_id``), so a replay matches the
    recording's answers to its branches only when it draws the same bits."""
    real = os.urandom
    os.urandom = random.Random(seed).randbytes
    try:
        yield
    finally:
        os.urandom = real


def new_proxy() -> Proxy:
    """A proxy of scenario 1 with its own snapshot (a snapshot holds the round-robin
    counters, so a twin on the same one would pick the other gateway)."""
    return Proxy((PROXY,), CONFIG, build_snapshot(table_rows(tables.bench_tables())),
                 branch_prefix=PREFIX)  # fmt: skip


SDP = (
    "v=0\r\no=bench 53655765 2353687637 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n"
    "m=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)


def _caller_request(method: str, n: int, ruri: str, cseq: int, extra: str = "") -> bytes:
    ip, port = CALLER.host, CALLER.port
    body = SDP.format(ip=ip) if method == "INVITE" else ""
    lines = [
        f"{method} {ruri} SIP/2.0",
        f"Via: SIP/2.0/UDP {ip}:{port};branch=z9hG4bK-{n}-{cseq}-0;rport",
        *([extra] if extra else []),
        f'From: "bench" <sip:bench@{ip}:{port}>;tag={n}SIPpTag00{n}',
        f"To: <sip:{tables.CALLED}@{tables.PKS_IP}:{tables.SIP_PORT}>"
        + ("" if method == "INVITE" else f";tag={n}SIPpTag01{n}"),
        f"Call-ID: {n}-bench@{ip}",
        f"CSeq: {cseq} {method}",
        f"Contact: <sip:bench@{ip}:{port}>",
        "Max-Forwards: 70",
        "User-Agent: pks-bench",
        *(["Subject: bench", "Content-Type: application/sdp"] if body else []),
        f"Content-Length: {len(body)}",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


def _answer(request: bytes, status: int, reason: str, gw: Address, n: int, rr: bool) -> bytes:
    """What SIPp's uas.xml sends back: [last_Via:] … [last_Record-Route:], its Contact."""
    req = parse(request)
    lines = [f"SIP/2.0 {status} {reason}"]
    for h in req.headers:
        if h.key in ("via", "from", "call-id", "cseq") or (rr and h.key == "record-route"):
            lines.append(h.raw.decode())
        elif h.key == "to":
            raw = h.raw.decode()
            lines.append(raw if "tag=" in raw else f"{raw};tag={n}SIPpTag01{n}")
    lines.append(f"Contact: <sip:gw@{gw.host}:{gw.port};transport=UDP>")
    body = SDP.format(ip=gw.host) if status == 200 and rr else ""
    if body:
        lines.append("Content-Type: application/sdp")
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


class Call:
    """Drives one call through the proxy, recording the six messages it receives."""

    def __init__(self, proxy: Proxy, n: int, recorded: list[tuple[bytes, Inbound]]) -> None:
        self.proxy = proxy
        self.n = n
        self.recorded = recorded

    def receive(self, data: bytes, inbound: Inbound, now: float) -> list[Send]:
        self.recorded.append((data, inbound))
        return self.proxy.receive(data, inbound, now)

    def run(self, now: float) -> None:
        p, n = self, self.n
        from_caller = Inbound(PROXY, CALLER)
        ruri = f"sip:{tables.CALLED}@{tables.PKS_IP}:{tables.SIP_PORT}"
        out = p.receive(_caller_request("INVITE", n, ruri, 1), from_caller, now)
        fwd = next(s for s in out if s.dest != CALLER)
        gw = fwd.dest
        from_gw = Inbound(PROXY, gw)
        p.receive(_answer(fwd.data, 180, "Ringing", gw, n, True), from_gw, now)
        out = p.receive(_answer(fwd.data, 200, "OK", gw, n, True), from_gw, now)
        ok = parse(next(s for s in out if s.dest == CALLER).data)
        route = ", ".join(str(v).strip() for v in reversed(ok.values("record-route")))
        contact = f"sip:gw@{gw.host}:{gw.port};transport=UDP"
        extra = f"Route: {route}"
        out = p.receive(_caller_request("ACK", n, contact, 1, extra), from_caller, now)
        out = p.receive(_caller_request("BYE", n, contact, 2, extra), from_caller, now)
        bye = next(s for s in out if s.dest == gw)
        out = p.receive(_answer(bye.data, 200, "OK", gw, n, False), from_gw, now)
        if not any(s.dest == CALLER for s in out):
            raise RuntimeError(f"call {n}: 200 to BYE not relayed")


def cdr_recorder() -> Recorder:
    """A recorder packing each finished record as a proxy's call records service does (what
    it queues stays in memory: no spool, no delivery)."""
    return Recorder(packer=Packer("00000000-0000-4000-8000-", lambda: 0.0))


def _messages(proxy: Proxy, calls: int, start: int) -> list[tuple[bytes, Inbound]]:
    """Record the received messages of ``calls`` calls once (then replayed for timing)."""
    recorded: list[tuple[bytes, Inbound]] = []
    for i in range(calls):
        Call(proxy, start + i, recorded).run(1000.0)
    return recorded


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m pksbench.core", description=__doc__)
    parser.add_argument("--calls", type=int, default=2000, help="calls per round (2000)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds, best one kept (5)")
    parser.add_argument("--profile", action="store_true", help="cProfile one round")
    parser.add_argument(
        "--cdr",
        action="store_true",
        help="call records on: each call's record filled and packed into its spool line, as"
        " in a proxy process (the lines are dropped; no spool, no delivery)",
    )
    args = parser.parse_args()

    rounds: list[float] = []
    per_call_messages = 0.0
    heap.tune()  # the collector as a proxy process runs it
    gc.collect()
    gc.freeze()
    for r in range(args.rounds + 1):
        # a round records the calls on one proxy, then replays what it received on a twin
        # (same branch prefix, so the callee's answers match the twin's branches too)
        recorder = new_proxy()
        with same_draws():
            msgs = _messages(recorder, args.calls, r * args.calls)
        forget_all()  # the replay parses each text anew, as a live proxy would
        per_call_messages = len(msgs) / args.calls  # INVITE, 180, 200, ACK, BYE, 200
        proxy = new_proxy()
        if args.cdr:
            proxy.calls.recorder = cdr_recorder()
        now = 1000.0
        t0 = time.perf_counter()
        if args.profile and r == args.rounds:
            prof = cProfile.Profile()
            prof.enable()
        with same_draws():
            for data, inbound in msgs:
                proxy.receive(data, inbound, now)
        if args.profile and r == args.rounds:
            prof.disable()
        elapsed = time.perf_counter() - t0
        if proxy.stats != recorder.stats:  # the replay must do what the recording did
            raise SystemExit(f"replay diverged: {proxy.stats} != {recorder.stats}")
        for _ in range(100):
            nxt = proxy.next_deadline()
            if nxt is None:
                break
            now = max(now + 1.0, nxt)
            proxy.on_timer(now)
        if proxy.transactions:
            raise SystemExit(f"{proxy.transactions} transactions left after a round")
        if r:  # the first round warms caches up
            rounds.append(elapsed)
    best = min(rounds)
    per_call = best / args.calls * 1e6
    print(
        f"core: {per_call:.1f} µs per call, {per_call / per_call_messages:.1f} µs per message"
        f" received (best of {args.rounds} rounds of {args.calls} calls"
        f"{', call records on' if args.cdr else ''})"
    )
    if args.profile:
        pstats.Stats(prof).sort_stats("tottime").print_stats(30)


if __name__ == "__main__":
    main()
