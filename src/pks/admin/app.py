"""Beside the data path: the management HTTP application (FastAPI), served inside the
proxy's event loop.

``GET /status`` (version, uptime, routing loaded), ``POST /reload``, the JSON-RPC endpoint
``POST /RPC`` (:mod:`pks.admin.rpc`) and the REST resources under ``/api/v1``
(:mod:`pks.admin.rest`); the OpenAPI description is at ``/openapi.json`` and ``/docs``.
Nothing here touches the data path directly: writes go through :mod:`pks.provision` and a
snapshot reload. ``build_app(server)`` is called once at start-up.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse

from pks import __version__, accel
from pks.admin.rest import build_rest
from pks.admin.rpc import build_rpc
from pks.admin.service import AdminService, NotReady
from pks.provision.errors import ProvisionError

if TYPE_CHECKING:
    from pks.server import Server


def build_app(server: Server) -> FastAPI:
    core = accel.status()  # "pure Python" or "compiled (mypyc)": which modules were imported
    app = FastAPI(title="pks-sip-proxy admin API", version=__version__)
    service = AdminService(server)

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
        snap = server.snapshot
        workers = await server.workers_status()
        return {
            "version": __version__,
            "uptime": round(time.time() - server.started_at, 3),
            "core": core,
            "routing_loaded": snap is not None,
            "routing": snap.summary() if snap is not None else None,
            "last_reload": None if server.last_reload is None else server.last_reload.message,
            "database": server.database_status(),
            **({"workers": workers} if workers is not None else {}),
        }

    @app.get("/limits")
    async def limits() -> dict[str, Any]:
        """Calls counted against limits: per source peer (max_calls) and per gateway (maxload)."""
        counts = await server.limit_counts()
        if counts is None:
            raise HTTPException(status_code=503, detail="the proxy is not running yet")
        return counts

    @app.post("/reload")
    async def reload() -> dict[str, Any]:
        result = await server.reload()
        if not result.ok:
            raise HTTPException(status_code=409, detail=result.message)
        return {"ok": True, "message": result.message}

    app.include_router(build_rpc(service))
    app.include_router(build_rest(service))
    return app
