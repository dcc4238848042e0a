"""Raw datagrams on the test network: what an attacker sends, what each socket received.

`Wire` drives ``peer.py`` inside the test namespace: named UDP sockets on 127.0.0.x
addresses that send what a test writes and queue what they receive, so a test can play an
attacker, a victim (a host in no table, listening for anything relayed to it) and a
scripted peer at once.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.e2e.harness import Endpoint, Netns

PEER = Path(__file__).with_name("peer.py")
Datagram = tuple[Endpoint, bytes]


class Wire:
    """Named sockets in ``netns``; close() ends the peer process."""

    def __init__(self, netns: Netns, sockets: dict[str, Endpoint]) -> None:
        self.sockets = sockets
        spec = {name: [e.ip, e.port] for name, e in sockets.items()}
        self._proc = netns.popen(
            [sys.executable, str(PEER), json.dumps(spec)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        if self._ask_line() != "ready":
            raise RuntimeError("peer.py did not start")

    def _ask_line(self) -> str:
        assert self._proc.stdout is not None
        return self._proc.stdout.readline().decode().strip()

    def _ask(self, cmd: dict[str, object]) -> object:
        assert self._proc.stdin is not None
        self._proc.stdin.write((json.dumps(cmd) + "\n").encode())
        self._proc.stdin.flush()
        line = self._ask_line()
        if not line:
            raise RuntimeError("peer.py stopped")
        return json.loads(line)

    def send(self, sender: str, to: Endpoint, data: bytes | str) -> None:
        raw = data.encode() if isinstance(data, str) else data
        self._ask({"op": "send", "from": sender, "to": [to.ip, to.port], "data": raw.hex()})

    def recv(self, on: str, timeout: float = 3.0) -> Datagram | None:
        """The next datagram ``on`` received (waiting up to ``timeout`` s), or None."""
        got = self._ask({"op": "recv", "on": on, "timeout": timeout})
        assert isinstance(got, dict)
        if not got:
            return None
        ip, port = got["from"]
        return Endpoint(ip, port), bytes.fromhex(got["data"])

    def drain(self, seconds: float) -> dict[str, list[Datagram]]:
        """Everything every socket received by ``seconds`` from now, per socket."""
        got = self._ask({"op": "drain", "for": seconds})
        assert isinstance(got, dict)
        return {
            name: [(Endpoint(ip, port), bytes.fromhex(data)) for ip, port, data in rows]
            for name, rows in got.items()
        }

    def close(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=5)


def request(
    method: str,
    ruri: str,
    sender: Endpoint,
    *,
    to_tag: str | None = None,
    route: str | None = None,
    call_id: str = "attack-1",
    branch: str = "z9hG4bKatt1",
    extra: str = "",
    body: str = "",
) -> str:
    """A well-formed request as an attacker writes it."""
    to = "<sip:victim@example.com>" + (f";tag={to_tag}" if to_tag else "")
    lines = [
        f"{method} {ruri} SIP/2.0",
        f"Via: SIP/2.0/UDP {sender};branch={branch};rport",
        "Max-Forwards: 70",
        f"From: <sip:attacker@{sender.ip}>;tag=a1",
        f"To: {to}",
        f"Call-ID: {call_id}",
        f"CSeq: 1 {method}",
        f"Contact: <sip:attacker@{sender}>",
    ]
    if route:
        lines.append(f"Route: {route}")
    if extra:
        lines.append(extra.rstrip("\r\n"))
    lines.append(f"Content-Length: {len(body)}")
    return "\r\n".join(lines) + "\r\n\r\n" + body


def response_to(request_bytes: bytes, status: int, reason: str, to_tag: str = "t1") -> str:
    """A response to a request as received (its Vias, From, To, Call-ID, CSeq, Record-Route)."""
    head = request_bytes.decode("latin-1").split("\r\n\r\n", 1)[0].split("\r\n")[1:]
    keep = ("via:", "from:", "call-id:", "cseq:", "record-route:", "v:", "f:", "i:")
    lines = [f"SIP/2.0 {status} {reason}"]
    for line in head:
        low = line.lower()
        if low.startswith(keep):
            lines.append(line)
        elif low.startswith(("to:", "t:")):
            lines.append(line if "tag=" in low or status == 100 else f"{line};tag={to_tag}")
    lines.append("Content-Length: 0")
    return "\r\n".join(lines) + "\r\n\r\n"
