"""A raw UDP peer for the security suite, run inside the test namespace.

Usage: ``python peer.py SOCKETS`` where SOCKETS is JSON ``{"name": [ip, port], ...}``. It binds
them, prints ``ready``, then answers one JSON command per input line with one JSON line:

- ``{"op": "send", "from": name, "to": [ip, port], "data": hex}`` → ``{}``
- ``{"op": "recv", "on": name, "timeout": s}`` → the next datagram received on that socket,
  ``{"from": [ip, port], "data": hex}``, or ``{}`` when none came in time;
- ``{"op": "drain", "for": s}`` → everything every socket received in the next ``s`` seconds
  (and before, not yet read): ``{"name": [[ip, port, hex], ...]}``.

Datagrams are queued per socket as they arrive (at most 10,000 each). It exits at the end of
its input.
"""

from __future__ import annotations

import json
import selectors
import socket
import sys
import time
from collections import deque

LIMIT = 10_000


class Peer:
    def __init__(self, spec: dict[str, list[object]]) -> None:
        self.sel = selectors.DefaultSelector()
        self.socks: dict[str, socket.socket] = {}
        self.queues: dict[str, deque[list[object]]] = {}
        for name, (ip, port) in spec.items():
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            sock.bind((ip, port))
            sock.setblocking(False)
            self.socks[name] = sock
            self.queues[name] = deque()
            self.sel.register(sock, selectors.EVENT_READ, name)

    def pump(self, until: float) -> None:
        """Queue what arrives until the monotonic time ``until``."""
        while True:
            wait = until - time.monotonic()
            for key, _ in self.sel.select(max(wait, 0.0)):
                try:
                    data, addr = key.fileobj.recvfrom(70000)  # type: ignore[union-attr]
                except BlockingIOError:
                    continue
                queue = self.queues[key.data]
                if len(queue) < LIMIT:
                    queue.append([addr[0], addr[1], data.hex()])
            if wait <= 0:
                return

    def command(self, cmd: dict[str, object]) -> object:
        op = cmd["op"]
        if op == "send":
            to = cmd["to"]
            self.socks[str(cmd["from"])].sendto(bytes.fromhex(str(cmd["data"])), tuple(to))  # type: ignore[arg-type]
            return {}
        if op == "recv":
            queue = self.queues[str(cmd["on"])]
            end = time.monotonic() + float(cmd["timeout"])  # type: ignore[arg-type]
            while not queue and time.monotonic() < end:
                self.pump(min(end, time.monotonic() + 0.05))
            if not queue:
                return {}
            ip, port, data = queue.popleft()
            return {"from": [ip, port], "data": data}
        if op == "drain":
            self.pump(time.monotonic() + float(cmd["for"]))  # type: ignore[arg-type]
            got = {name: list(queue) for name, queue in self.queues.items()}
            for queue in self.queues.values():
                queue.clear()
            return got
        raise ValueError(f"unknown op {op!r}")


def main() -> None:
    peer = Peer(json.loads(sys.argv[1]))
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip():
            print(json.dumps(peer.command(json.loads(line))), flush=True)


if __name__ == "__main__":
    main()
