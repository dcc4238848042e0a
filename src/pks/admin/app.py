"""The management HTTP application (FastAPI), served inside the proxy's event loop.

Routes here only read the server's state or ask it to reload; nothing touches the data path
directly. ``build_app(server)`` is called once at start-up.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, HTTPException

from pks import __version__

if TYPE_CHECKING:
    from pks.server import Server


def build_app(server: Server) -> FastAPI:
    app = FastAPI(title="pks-sip-proxy admin API", version=__version__)

    @app.get("/status")
    def status() -> dict[str, Any]:
        snap = server.snapshot
        return {
            "version": __version__,
            "uptime": round(time.time() - server.started_at, 3),
            "routing_loaded": snap is not None,
            "routing": snap.summary() if snap is not None else None,
            "last_reload": None if server.last_reload is None else server.last_reload.message,
            "database": server.database_status(),
        }

    @app.post("/reload")
    async def reload() -> dict[str, Any]:
        result = await server.reload()
        if not result.ok:
            raise HTTPException(status_code=409, detail=result.message)
        return {"ok": True, "message": result.message}

    return app
