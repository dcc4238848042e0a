"""Serving the admin app with uvicorn on the proxy's own event loop (no thread, no process).

``PKS_ADMIN_LISTEN`` gives host:port; bound to anything but loopback, a bearer token
(``PKS_ADMIN_TOKEN``) is required and checked on every request.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import TYPE_CHECKING

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from pks.admin.app import build_app

if TYPE_CHECKING:
    from pks.server import Server

log = logging.getLogger("pks.admin")


class AdminError(RuntimeError):
    """The admin API cannot start as configured."""


class BearerAuth:
    """ASGI middleware: every HTTP request must carry ``Authorization: Bearer <token>``."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and dict(scope["headers"]).get(b"authorization") != self.expected
        ):
            await send({"type": "http.response.start", "status": 401,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"www-authenticate", b"Bearer")]})  # fmt: skip
            await send(
                {"type": "http.response.body", "body": b'{"detail":"bearer token required"}'}
            )
            return
        await self.app(scope, receive, send)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


async def start_admin(server: Server) -> uvicorn.Server:
    settings = server.settings
    addr = settings.admin_address
    app: ASGIApp = build_app(server)
    if not _is_loopback(addr.host) and not settings.admin_token:
        raise AdminError(
            f"PKS_ADMIN_LISTEN={settings.admin_listen} is not loopback: set PKS_ADMIN_TOKEN"
        )
    if settings.admin_token:
        app = BearerAuth(app, settings.admin_token)
    config = uvicorn.Config(app, host=addr.host, port=addr.port, log_level="warning",
                            lifespan="off", access_log=False)  # fmt: skip
    config.load()
    web = uvicorn.Server(config)
    web.lifespan = config.lifespan_class(config)
    await web.startup()
    log.info("admin API on http://%s", addr)
    return web


async def stop_admin(web: object) -> None:
    assert isinstance(web, uvicorn.Server)
    web.should_exit = True
    await web.shutdown()
