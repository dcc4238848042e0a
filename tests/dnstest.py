"""A small authoritative DNS server on loopback for tests (dnslib), answering from a zone text.

Run in-process (``LocalDns(zone).start()``) or as a script inside the e2e network namespace:
``python tests/dnstest.py HOST PORT ZONEFILE`` (prints ``ready`` once listening).
"""

from __future__ import annotations

import sys
import time

from dnslib.server import DNSServer
from dnslib.zoneresolver import ZoneResolver


class LocalDns:
    def __init__(self, zone: str, host: str = "127.0.0.1", port: int = 0) -> None:
        self.resolver = ZoneResolver(zone)
        self.server = DNSServer(self.resolver, address=host, port=port)
        self.host = host

    @property
    def port(self) -> int:
        return int(self.server.server.server_address[1])

    def start(self) -> LocalDns:
        self.server.start_thread()
        return self

    def stop(self) -> None:
        self.server.stop()


if __name__ == "__main__":
    host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    with open(path) as zone:
        dns = LocalDns(zone.read(), host, port).start()
    print("ready", flush=True)
    while True:
        time.sleep(3600)
