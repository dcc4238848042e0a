"""Beside the data path: REST resources for the tables, the sets, customers and providers,
route explanations, and dbtext import/export (all under ``/api/v1``).

Reads answer the rows as stored. Writes answer ``{"data", "applied", "reload"}``: ``data``
is the written row or object, ``applied`` says the routing snapshot was rebuilt with it (it
is false only when the tables already held a problem that stops a reload — ``reload`` then
says which). A refused write is a 4xx ``{"detail", "problems": [...]}`` and writes nothing.
"""

# no "from __future__ import annotations": FastAPI must see the body classes, not names

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from pks.admin.cdr import add_cdr_routes
from pks.admin.floods import add_flood_routes
from pks.admin.models import (
    AddressIn,
    AddressPatch,
    CustomerIn,
    DialplanIn,
    DialplanPatch,
    DispatcherIn,
    DispatcherPatch,
    ImportIn,
    ProviderIn,
    SetIn,
)
from pks.admin.service import AdminService
from pks.provision import peers, tables, transfer
from pks.provision.errors import Invalid
from pks.provision.peers import parse_source
from pks.provision.store import KAMAILIO_TABLES as TABLES
from pks.route.explain import explain

__all__ = ["build_rest"]


def build_rest(service: AdminService) -> APIRouter:
    router = APIRouter(prefix="/api/v1")
    _table(router, service, "address", AddressIn, AddressPatch)
    _table(router, service, "dialplan", DialplanIn, DialplanPatch)
    _table(router, service, "dispatcher", DispatcherIn, DispatcherPatch)
    _sets(router, service)
    _peers(router, service, "customer", CustomerIn)
    _peers(router, service, "provider", ProviderIn)
    _tools(router, service)
    add_cdr_routes(router, service)
    add_flood_routes(router, service)
    return router


def _table(router: APIRouter, service: AdminService, name: str, create: Any, patch: Any) -> None:

    @router.get(f"/{name}", tags=[name], summary=f"every {name} row, with its owner")
    async def list_all() -> list[dict[str, Any]]:
        return await service.read(tables.list_rows, name)  # type: ignore[no-any-return]

    @router.get(f"/{name}/{{row_id}}", tags=[name], summary=f"one {name} row")
    async def get_one(row_id: int) -> dict[str, Any]:
        return await service.read(tables.get_row, name, row_id)  # type: ignore[no-any-return]

    @router.post(f"/{name}", tags=[name], status_code=201, summary=f"add a {name} row")
    async def add(body: create) -> dict[str, Any]:
        return await service.write(tables.create_row, name, body.values())

    @router.patch(f"/{name}/{{row_id}}", tags=[name], summary=f"change columns of a {name} row")
    async def change(row_id: int, body: patch) -> dict[str, Any]:
        return await service.write(tables.update_row, name, row_id, body.values(partial=True))

    @router.delete(f"/{name}/{{row_id}}", tags=[name], summary=f"delete a {name} row")
    async def remove(row_id: int) -> dict[str, Any]:
        return await service.write(tables.delete_row, name, row_id)


def _sets(router: APIRouter, service: AdminService) -> None:
    @router.get("/sets", tags=["sets"], summary="dispatcher sets, algorithms, R-URI hosts")
    async def list_sets() -> list[dict[str, Any]]:
        return await service.read(tables.list_sets)  # type: ignore[no-any-return]

    @router.put("/sets/{setid}", tags=["sets"], summary="set a set's algorithm and/or R-URI host")
    async def put_set(setid: int, body: SetIn) -> dict[str, Any]:
        return await service.write(tables.put_set, setid, body.algorithm, body.ruri_host)

    @router.delete("/sets/{setid}", tags=["sets"], summary="back to the defaults")
    async def delete_set(setid: int) -> dict[str, Any]:
        return await service.write(tables.delete_set, setid)


def _peers(router: APIRouter, service: AdminService, kind: str, create: Any) -> None:
    path = f"/{kind}s"

    @router.get(path, tags=[f"{kind}s"], summary=f"every {kind}, whole")
    async def list_all() -> list[dict[str, Any]]:
        return await service.read(peers.list_peers, kind)  # type: ignore[no-any-return]

    @router.get(f"{path}/{{name}}", tags=[f"{kind}s"], summary=f"one {kind}, whole")
    async def get_one(name: str) -> dict[str, Any]:
        return await service.read(peers.get_peer, kind, name)  # type: ignore[no-any-return]

    @router.post(
        path, tags=[f"{kind}s"], status_code=201, summary=f"create a {kind} and all its rows"
    )
    async def add(body: create) -> dict[str, Any]:
        return await service.write(peers.create_peer, kind, body.spec())

    @router.delete(
        f"{path}/{{name}}", tags=[f"{kind}s"], summary=f"delete a {kind} and every row it owns"
    )
    async def remove(name: str) -> dict[str, Any]:
        return await service.write(peers.delete_peer, kind, name)


def _tools(router: APIRouter, service: AdminService) -> None:
    @router.get("/explain", tags=["tools"], summary="dry run: where a call would go, and why")
    async def explain_route(
        source: Annotated[
            str, Query(description="IP[:PORT] the call comes from (5060 if no port)")
        ],
        number: Annotated[str, Query(description="the R-URI user part (the called number)")],
    ) -> dict[str, Any]:
        try:
            ip, _, port = parse_source(source if "/" not in source else "!")
        except ValueError as exc:
            raise Invalid("cannot explain", [str(exc)]) from None
        proxy = service.instance.proxy
        result = explain(service.snapshot, ip, port or 5060, number).as_dict()
        if proxy is not None:  # the running proxy's gateway states, policy and open calls
            proxy.gateways.refresh()
            usable, policy = proxy.gateways.is_usable, proxy.config.policy
            now = asyncio.get_running_loop().time()  # the core's clock (calls per second)
            result = explain(
                service.snapshot,
                ip,
                port or 5060,
                number,
                usable,
                policy,
                proxy.calls.peer_count,
                limits=proxy.limits,
                now=now,
            ).as_dict()
        if proxy is not None:
            by_uri = {
                d.uri: d
                for s in service.snapshot.dispatcher_sets()
                for d in s.destinations
                if d.setid == result["setid"]
            }
            for gw in result["gateways"]:
                dest = by_uri.get(gw["uri"])
                state = None if dest is None else proxy.gateways.describe(dest.target)
                gw["state"] = None if state is None else state["state"]
        return result

    @router.post("/import", tags=["tools"], summary="replace tables from dbtext files")
    async def import_files(body: ImportIn) -> dict[str, Any]:
        return await service.write(transfer.import_tables, body.files, check_only=body.check_only)

    @router.get("/export", tags=["tools"], summary="tables as dbtext files")
    async def export_files(
        table: Annotated[list[str] | None, Query()] = None,
        format: Literal["tsv", "dbtext"] = "tsv",
    ) -> dict[str, str]:
        return await service.read(  # type: ignore[no-any-return]
            transfer.export_tables, table or list(TABLES), colon=format == "dbtext"
        )
