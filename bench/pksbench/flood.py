"""``python -m pksbench.flood``: a stranger floods a SIP proxy over UDP (loopback only).

Datagrams come from several loopback addresses that no ``address`` row knows (127.66.0.N by
default), in turn: garbage (random bytes, or text that is no SIP message) and well-formed
INVITE, OPTIONS and REGISTER requests, each with its own Call-ID and branch. Every datagram
is built before the first is sent; the send loop only paces and calls ``sendto`` (Python has
no ``sendmmsg``), one socket per source address. Sending on loopback costs the sender the
kernel's work on both sides, so one process reaches some tens of thousands of datagrams per
second; the rate actually reached is reported (JSON on stdout and in ``--report``).

The run is bounded (``--seconds``) and stops early on SIGTERM/SIGINT, reporting what it sent.
Whatever the proxy answers is read between bursts and counted (``answers``: a proxy that
answers strangers spends on it and tells a scanner it is there).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import random
import signal
import socket
import sys
import time
from pathlib import Path
from types import FrameType

KINDS = ("garbage", "INVITE", "OPTIONS", "REGISTER")


def _request(method: str, src: str, port: int, dst: str, dport: int, n: int) -> bytes:
    """A well-formed request from a stranger (a scanner's usual shapes)."""
    tag = f"{n:x}f100d"
    branch = f"z9hG4bK-flood-{src.replace('.', '')}-{n}"
    callid = f"flood-{n}-{src}"
    user = "100" if method != "INVITE" else f"+4420{n % 10_000_000:07d}"
    uri = f"sip:{user}@{dst}:{dport}" if method != "REGISTER" else f"sip:{dst}:{dport}"
    body = ""
    extra = ""
    if method == "INVITE":
        body = (
            f"v=0\r\no=- {n} {n} IN IP4 {src}\r\ns=-\r\nc=IN IP4 {src}\r\nt=0 0\r\n"
            "m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
        )
        extra = "Content-Type: application/sdp\r\n"
    elif method == "REGISTER":
        extra = "Expires: 3600\r\n"
    head = (
        f"{method} {uri} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {src}:{port};branch={branch};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:{user}@{src}>;tag={tag}\r\n"
        f"To: <sip:{user}@{dst}>\r\n"
        f"Call-ID: {callid}\r\n"
        f"CSeq: 1 {method}\r\n"
        f"Contact: <sip:{user}@{src}:{port}>\r\n"
        "User-Agent: pks-bench-stranger\r\n"
        f"{extra}"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return (head + body).encode()


def _garbage(rng: random.Random, n: int) -> bytes:
    """Random bytes (every other one), or SIP-looking text that is not a SIP message."""
    if n % 2:
        return rng.randbytes(rng.randrange(16, 600))
    return (
        f"HELLO {n} sip:x@y SIP/9.9\r\nVia: nonsense\r\n{'A' * rng.randrange(0, 300)}\r\n"
    ).encode()


def packets(
    sources: list[str], ports: list[int], dst: str, dport: int, per_source: int, seed: int = 66
) -> list[list[bytes]]:
    """``per_source`` datagrams per source address, the four kinds in turn."""
    rng = random.Random(seed)
    built: list[list[bytes]] = []
    n = 0
    for src, port in zip(sources, ports, strict=True):
        mine: list[bytes] = []
        for i in range(per_source):
            n += 1
            kind = KINDS[i % len(KINDS)]
            if kind == "garbage":
                mine.append(_garbage(rng, n))
            else:
                mine.append(_request(kind, src, port, dst, dport, n))
        built.append(mine)
    return built


class _Stop(Exception):
    pass


def _on_signal(signum: int, frame: FrameType | None) -> None:
    raise _Stop


def flood(
    target: tuple[str, int], sources: list[str], rate: float, seconds: float, per_source: int
) -> dict[str, object]:
    """Send ``rate`` datagrams/s to ``target`` for ``seconds``; what was sent, as a dict."""
    socks = []
    for src in sources:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        s.bind((src, 0))
        s.setblocking(False)
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    built = packets(sources, ports, target[0], target[1], per_source)
    # One flat cycle: (bound sendto, datagram), the sources in turn.
    cycle = [(socks[k].sendto, built[k][i]) for i in range(per_source) for k in range(len(socks))]
    size = len(cycle)
    sent = errors = 0
    answers = [0]
    buf = bytearray(65536)
    tick = 0.002  # pace in bursts of at most 2 ms of datagrams
    burst_cap = max(1, int(rate * 0.02))
    t0 = time.monotonic()
    end = t0 + seconds
    stopped = False
    try:
        while True:
            now = time.monotonic()
            if now >= end:
                break
            due = min(int((now - t0) * rate) - sent, burst_cap)
            if due <= 0:
                _drain(socks, buf, answers)
                time.sleep(tick)
                continue
            j = sent % size
            for _ in range(due):
                send, data = cycle[j]
                try:
                    send(data, target)
                except OSError:
                    errors += 1
                j += 1
                if j == size:
                    j = 0
            sent += due
    except _Stop:
        stopped = True
    elapsed = time.monotonic() - t0
    _drain(socks, buf, answers)
    for s in socks:
        s.close()
    return {
        "target": f"{target[0]}:{target[1]}",
        "sources": sources,
        "rate_asked": rate,
        "seconds_asked": seconds,
        "sent": sent,
        "send_errors": errors,
        "seconds": round(elapsed, 3),
        "rate_reached": round(sent / elapsed, 1) if elapsed > 0 else 0.0,
        "stopped_early": stopped,
        "answers": answers[0],
        "kinds": list(KINDS),
        "distinct_datagrams": size,
    }


def _drain(socks: list[socket.socket], buf: bytearray, answers: list[int]) -> None:
    """Count (and drop) every datagram waiting on the sockets."""
    for s in socks:
        while True:
            try:
                s.recv_into(buf)
            except OSError:  # BlockingIOError: nothing more; ICMP errors: not an answer
                break
            answers[0] += 1


def source_addresses(first: str, count: int) -> list[str]:
    """``count`` loopback addresses from ``first`` on; refuses anything outside 127.0.0.0/8."""
    start = ipaddress.IPv4Address(first)
    found = [str(start + i) for i in range(count)]
    if not all(ipaddress.IPv4Address(a) in ipaddress.IPv4Network("127.0.0.0/8") for a in found):
        raise SystemExit("flood sources must be loopback addresses (127.0.0.0/8)")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m pksbench.flood", description=__doc__)
    parser.add_argument("target", help="IP:PORT of the proxy (loopback)")
    parser.add_argument("--rate", type=float, default=20_000, help="datagrams/s (20000)")
    parser.add_argument("--seconds", type=float, default=10, help="duration, at most 600 s")
    parser.add_argument("--first-source", default="127.66.0.1", help="first source address")
    parser.add_argument("--sources", type=int, default=8, help="source addresses (8)")
    parser.add_argument("--distinct", type=int, default=512, help="datagrams built per source")
    parser.add_argument("--report", type=Path, help="also write the JSON report here")
    args = parser.parse_args()
    host, _, port = args.target.rpartition(":")
    if ipaddress.IPv4Address(host) not in ipaddress.IPv4Network("127.0.0.0/8"):
        raise SystemExit("the flood stays on loopback: target must be in 127.0.0.0/8")
    if not 0 < args.seconds <= 600 or args.rate <= 0:
        raise SystemExit("--seconds must be in (0, 600] and --rate positive")
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    sources = source_addresses(args.first_source, args.sources)
    report = flood((host, int(port)), sources, args.rate, args.seconds, args.distinct)
    text = json.dumps(report)
    if args.report is not None:
        args.report.write_text(text + "\n")
    print(text, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
