"""Beside the data path: the probes of orchestrators — ``GET /health/live`` and
``GET /health/ready`` (HEAD too).

* **live** answers 200 whenever it is asked: the admin API is served on the proxy's own event
  loop, so an answer proves the loop turns; a stuck loop answers nothing and the probe times
  out. An orchestrator restarts a process that stops answering it.
* **ready** answers 200 once the routing tables are loaded and the SIP sockets bound, 503
  before. It stays 200 while the database is unreachable, since routing goes on from the last
  tables (``GET /status`` says so): taking the proxy out of service would only add an outage.

Both are read-only and name nothing (no address, table, version or count beyond two booleans),
which is why the guard lets them through without the token or a matching ``Host``
(:data:`pks.admin.guard.PROBES`): a probe from a kubelet, a container's HEALTHCHECK or a load
balancer cannot send a token, and reaches the API by an address rather than by its name.
``python -m pks.admin.healthcheck`` is the client that the image's HEALTHCHECK runs.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from pks.admin.healthcheck import LIVE, READY
from pks.admin.service import Instance

__all__ = ["build_health", "readiness"]


def readiness(instance: Instance) -> dict[str, bool]:
    """What ready means: the routing tables are loaded and the SIP sockets are bound."""
    proxy = instance.proxy
    return {
        "routing_loaded": instance.snapshot is not None,
        "sockets_bound": proxy is not None and bool(proxy.sockets),
    }


def build_health(instance: Instance) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get(LIVE)
    async def live() -> JSONResponse:
        """200 while the proxy's event loop turns."""
        return JSONResponse({"status": "live"})

    @router.get(READY)
    async def ready() -> JSONResponse:
        """200 when calls can be routed (tables loaded, sockets bound), else 503."""
        checks = readiness(instance)
        ok = all(checks.values())
        return JSONResponse(
            {"status": "ready" if ok else "not ready", **checks}, status_code=200 if ok else 503
        )

    # HEAD answers as GET does; kept out of the schema, where it would repeat the operation id
    router.add_api_route(LIVE, live, methods=["HEAD"], include_in_schema=False)
    router.add_api_route(READY, ready, methods=["HEAD"], include_in_schema=False)
    return router
