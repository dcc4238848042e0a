"""Beside the data path: the management HTTP application (FastAPI), served inside the
proxy's event loop.

``GET /status`` (version, uptime, routing loaded), ``POST /reload``, the JSON-RPC endpoint
``POST /RPC`` (:mod:`pks.admin.rpc`) and the REST resources under ``/api/v1``
(:mod:`pks.admin.rest`); the OpenAPI description is at ``/openapi.json`` and ``/docs``.
Every request first passes :class:`pks.admin.guard.AdminGuard` (Host, Origin, token, JSON
writes), installed here once for every route.
Nothing here touches the data path directly: writes go through :mod:`pks.provision` and a
snapshot reload. ``build_app(instance)`` is called once at start-up, by the server (which the
admin package knows only as an :class:`pks.admin.service.Instance`).
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response

from pks import __version__, accel
from pks.admin.guard import AdminGuard
from pks.admin.health import build_health
from pks.admin.rest import build_rest
from pks.admin.rpc import build_rpc
from pks.admin.service import AdminService, Instance, NotReady
from pks.metrics.exposition import CONTENT_TYPE, render
from pks.provision.errors import ProvisionError
from pks.transport.tcp import DROP_REASONS


def build_app(instance: Instance) -> FastAPI:
    core = accel.status()  # "pure Python" or "compiled (mypyc)": which modules were imported
    app = FastAPI(title="pks-sip-proxy admin API", version=__version__)
    service = AdminService(instance)
    settings = instance.settings
    app.add_middleware(
        AdminGuard,
        listen=settings.admin_address,
        hosts=settings.admin_host_list,
        token=settings.admin_token,
    )

    @app.exception_handler(ProvisionError)
    async def refused(request: Request, exc: ProvisionError) -> JSONResponse:
        return JSONResponse(
            status_code=exc.status, content={"detail": exc.message, "problems": exc.problems}
        )

    @app.exception_handler(NotReady)
    async def not_ready(request: Request, exc: NotReady) -> JSONResponse:
        return JSONResponse(status_code=503, content={"detail": str(exc)})

    @app.get("/status")
    async def status() -> dict[str, Any]:
        snap = instance.snapshot
        workers = await instance.workers_status()
        stats, _ = await instance.transaction_stats()
        return {
            "version": __version__,
            "uptime": round(time.time() - instance.started_at, 3),
            "core": core,
            "routing_loaded": snap is not None,
            "routing": snap.summary() if snap is not None else None,
            "last_reload": None if instance.last_reload is None else instance.last_reload.message,
            "database": instance.database_status(),
            # connections the TCP bounds closed, by reason (docs/security.md)
            "tcp_drops": {reason: stats.get(reason, 0) for reason in DROP_REASONS},
            # UDP datagrams over PKS_MAX_MESSAGE_SIZE, dropped unparsed (docs/security.md)
            "udp_too_large": stats.get("udp_too_large", 0),
            # bans, per-source rate, calls per second, Redis (docs/security.md#floods-and-fraud)
            "floods": None
            if instance.floods is None
            else instance.floods.status()
            | {key: stats.get(key, 0) for key in ("dropped_banned", "bans_made")},  # all workers'
            **({"workers": workers} if workers is not None else {}),
        }

    @app.get("/limits")
    async def limits() -> dict[str, Any]:
        """Calls counted against limits: per source peer (max_calls) and per gateway (maxload)."""
        counts = await instance.limit_counts()
        if counts is None:
            raise HTTPException(status_code=503, detail="the proxy is not running yet")
        return counts

    @app.get("/metrics", response_class=Response)
    async def metrics() -> Response:
        """The instance's figures in Prometheus text format (docs/metrics.md)."""
        return Response(render(await instance.metrics_figures()), media_type=CONTENT_TYPE)

    @app.post("/reload")
    async def reload() -> dict[str, Any]:
        result = await instance.reload()
        if not result.ok:
            raise HTTPException(status_code=409, detail=result.message)
        return {"ok": True, "message": result.message}

    app.include_router(build_health(instance))  # /health/live, /health/ready: probes
    app.include_router(build_rpc(service))
    app.include_router(build_rest(service))
    return app
