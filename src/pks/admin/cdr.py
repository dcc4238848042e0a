"""Beside the data path: call records through the admin API (``/api/v1/cdrs``, docs/cdr.md).

Read from the database sink's ``pks_cdr`` table, else from the file sink's JSON lines
(:mod:`pks.cdr.query`), in a worker thread.
"""

# no "from __future__ import annotations": FastAPI must see the parameter types

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query

from pks.admin.service import AdminService
from pks.cdr.fields import parse_time
from pks.cdr.query import Filters, NoStore, search

__all__ = ["add_cdr_routes"]

Status = Literal["answered", "failed", "cancelled", "rejected"]


def _time(name: str, text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return parse_time(text)
    except ValueError:
        raise HTTPException(400, f"{name}: expected an ISO 8601 time or Unix seconds") from None


def add_cdr_routes(router: APIRouter, service: AdminService) -> None:
    @router.get("/cdrs", tags=["cdrs"], summary="call records, filtered, newest first")
    async def list_cdrs(
        peer: Annotated[str | None, Query(description="source peer tag")] = None,
        number: Annotated[
            str | None, Query(description="prefix of the caller's or the called number")
        ] = None,
        since: Annotated[
            str | None, Query(description="calls started at or after (ISO 8601 or Unix s)")
        ] = None,
        until: Annotated[str | None, Query(description="calls started before")] = None,
        status: Status | None = None,
        limit: Annotated[int, Query(ge=0, le=1_000_000, description="0: all")] = 100,
        order: Literal["desc", "asc"] = "desc",
    ) -> list[dict[str, Any]]:
        filters = Filters(
            peer=peer,
            number=number,
            since=_time("since", since),
            until=_time("until", until),
            status=status,
            limit=limit,
            newest_first=order == "desc",
        )
        try:
            return await asyncio.to_thread(search, service.instance.settings, filters)
        except NoStore as exc:
            raise HTTPException(409, str(exc)) from None

    @router.get("/cdrs/stats", tags=["cdrs"], summary="records made, spooled, delivered, dropped")
    async def cdr_stats() -> dict[str, Any]:
        stats, _ = await service.instance.transaction_stats()
        return {
            "sinks": list(service.instance.settings.cdr_sink_names),
            **{key: value for key, value in sorted(stats.items()) if key.startswith("cdr_")},
        }
