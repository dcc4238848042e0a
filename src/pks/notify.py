"""Beside the data path: tell the service manager how the proxy is doing (sd_notify).

Under systemd with ``Type=notify`` (deploy/pks.service), ``NOTIFY_SOCKET`` names a datagram
socket; ``READY=1`` sent there once the sockets are bound and the tables loaded is what makes
``systemctl start pks`` return, and units ordered after pks start only then. ``STOPPING=1``
says a stop has begun. The protocol is one datagram of ``KEY=value`` lines, so a few lines
here replace a dependency on libsystemd. Without ``NOTIFY_SOCKET`` (a terminal, a container)
every call does nothing; a failed send is logged, never raised: the proxy runs on.
"""

from __future__ import annotations

import logging
import os
import socket

__all__ = ["notify"]

log = logging.getLogger("pks.notify")

VARIABLE = "NOTIFY_SOCKET"


def notify(*fields: str) -> bool:
    """Send ``fields`` (``"READY=1"``, ``"STATUS=…"``) to the service manager; True if sent."""
    path = os.environ.get(VARIABLE, "")
    if not path or not fields:
        return False
    # "@name" is a socket in the abstract namespace (its name starts with a NUL byte)
    address = "\0" + path[1:] if path.startswith("@") else path
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto("\n".join(fields).encode(), address)
    except OSError as exc:
        log.warning("cannot notify the service manager at %s: %s", path, exc)
        return False
    return True
