"""Serving the admin app with uvicorn on the proxy's own event loop (no thread, no process).

``PKS_ADMIN_LISTEN`` gives host:port; bound to anything but loopback, the API does not start
without a bearer token (``PKS_ADMIN_TOKEN``). The token, when set, is checked on every
request by the app's guard (:mod:`pks.admin.guard`), on loopback too.
"""

from __future__ import annotations

import ipaddress
import logging

import uvicorn

from pks.admin.app import build_app
from pks.admin.service import Instance

log = logging.getLogger("pks.admin")


class AdminError(RuntimeError):
    """The admin API cannot start as configured."""


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


async def start_admin(server: Instance) -> uvicorn.Server:
    settings = server.settings
    addr = settings.admin_address
    if not _is_loopback(addr.host) and not settings.admin_token:
        raise AdminError(
            f"PKS_ADMIN_LISTEN={settings.admin_listen} is not loopback: set PKS_ADMIN_TOKEN"
        )
    app = build_app(server)
    config = uvicorn.Config(
        app, host=addr.host, port=addr.port, log_level="warning", lifespan="off", access_log=False
    )
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
