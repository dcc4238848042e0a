"""A real pks ``Server`` in the test process (UDP on loopback, admin API on a free port)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

from pks.config import Settings
from pks.server import Server


def free_port(host: str, kind: int = socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def free_tcp_port(host: str = "127.0.0.1") -> int:
    """A free TCP port (the admin API's)."""
    return free_port(host, socket.SOCK_STREAM)


@contextlib.asynccontextmanager
async def running_server(listen: str, db_url: str, **overrides: Any) -> AsyncIterator[Server]:
    """Started on ``listen`` over ``db_url``, without gateway probing; closed at the end.
    ``overrides``: more settings (``admin_token=...``)."""
    settings = Settings(
        **{
            "ds_ping_interval": 0,
            "listen": listen,
            "db_url": db_url,
            "admin_listen": f"127.0.0.1:{free_tcp_port()}",
            **overrides,
        }
    )
    srv = Server(settings)
    await asyncio.wait_for(srv.start(), 10)
    try:
        yield srv
    finally:
        await srv.close()
