"""Beside the data path: the admin API of flood and fraud protection.

REST (under ``/api/v1``): ``/bans`` (the ``pks_ban`` rows and the bans in force — the
table's, this instance's automatic ones and the cluster's), ``/blocks`` (``pks_block``),
``PATCH /customers/NAME/limits`` and ``/providers/NAME/limits``. JSON-RPC with the names of
Kamailio's htable module for its ``ipban`` table: ``htable.dump``, ``htable.get``,
``htable.sets``, ``htable.delete``; answers shaped like ``dispatcher.list``'s
(``{NRBANS, RECORDS: [{BAN: {...}}]}``).
"""

# no "from __future__ import annotations": FastAPI must see the body classes, not names

from typing import Any

from fastapi import APIRouter

from pks.admin.models import BanIn, BlockIn, LimitsIn
from pks.admin.rpc import RpcFault, _param, method
from pks.admin.service import AdminService
from pks.provision import guard
from pks.provision.errors import Invalid, NotFound
from pks.route.fraud import parse_ban_address

__all__ = ["add_flood_routes", "bans_in_force"]

HTABLE = "ipban"


def bans_in_force(service: AdminService) -> list[dict[str, Any]]:
    """Every ban the gate applies now: the table's (live snapshot), automatic, cluster."""
    proxy = service.instance.proxy
    if proxy is None:
        return []
    return [ban.as_dict() for ban in proxy.gate.shield.bans()]


async def _remove(service: AdminService, address: str) -> dict[str, Any]:
    """Lift a ban wherever it is: the table row (reload), the automatic or cluster ban."""
    try:
        canonical = parse_ban_address(address)
    except ValueError as exc:
        raise Invalid("cannot lift the ban", [str(exc)]) from None
    floods = service.instance.floods
    lifted = floods.lift(canonical) if floods is not None else False
    try:
        return await service.write(guard.delete_ban, canonical)
    except NotFound:
        if not lifted:
            raise
    return {
        "data": {"address": canonical, "origin": "auto"},
        "applied": True,
        "reload": "automatic ban lifted",
    }


def add_flood_routes(router: APIRouter, service: AdminService) -> None:
    @router.get("/bans", tags=["bans"], summary="bans in force, and the pks_ban rows")
    async def list_bans() -> dict[str, Any]:
        rows = await service.read(guard.list_bans)
        return {"in_force": bans_in_force(service), "table": rows}

    @router.post("/bans", tags=["bans"], status_code=201, summary="ban an address or network")
    async def add_ban(body: BanIn) -> dict[str, Any]:
        return await service.write(guard.add_ban, body.address, body.reason, body.seconds)

    @router.delete("/bans/{address:path}", tags=["bans"], summary="lift a ban")
    async def remove_ban(address: str) -> dict[str, Any]:
        return await _remove(service, address)

    @router.get("/blocks", tags=["blocks"], summary="blocked destination prefixes")
    async def list_blocks() -> list[dict[str, Any]]:
        return await service.read(guard.list_blocks)  # type: ignore[no-any-return]

    @router.post("/blocks", tags=["blocks"], status_code=201, summary="block a prefix")
    async def add_block(body: BlockIn) -> dict[str, Any]:
        return await service.write(guard.add_block, body.prefix, body.tag, body.reason)

    @router.delete("/blocks/{block_id}", tags=["blocks"], summary="unblock a prefix")
    async def remove_block(block_id: int) -> dict[str, Any]:
        return await service.write(guard.delete_block, block_id)

    for kind in ("customer", "provider"):
        _limits(router, service, kind)


def _limits(router: APIRouter, service: AdminService, kind: str) -> None:
    @router.patch(
        f"/{kind}s/{{name}}/limits",
        tags=[f"{kind}s"],
        summary=f"change a {kind}'s max_calls, max_cps, max_intl_calls",
    )
    async def set_limits(name: str, body: LimitsIn) -> dict[str, Any]:
        return await service.write(
            guard.set_limits, kind, name, body.model_dump(exclude_unset=True)
        )


# ---- JSON-RPC (Kamailio's htable names, for the ipban table) ---------------------------------


def _table(params: list[Any]) -> None:
    name = _param(params, 0, str, "htable")
    if name != HTABLE:
        raise RpcFault(500, "No such htable", f"the ban table is {HTABLE!r}")


def _record(ban: dict[str, Any]) -> dict[str, Any]:
    return {
        "BAN": {
            "ADDRESS": ban["address"],
            "REASON": ban["reason"],
            "ORIGIN": ban["origin"],
            "EXPIRES": ban["expires"] or 0,
        }
    }


@method("htable.dump", "ipban → {NRBANS, RECORDS: [{BAN: {ADDRESS, REASON, ORIGIN, EXPIRES}}]}")
async def htable_dump(service: AdminService, params: list[Any]) -> Any:
    _table(params)
    bans = bans_in_force(service)
    return {"NRBANS": len(bans), "RECORDS": [_record(b) for b in bans]}


@method("htable.get", "ipban address → {BAN: {...}} (a ban in force)")
async def htable_get(service: AdminService, params: list[Any]) -> Any:
    _table(params)
    try:
        address = parse_ban_address(_param(params, 1, str, "address"))
    except ValueError as exc:
        raise RpcFault(500, "Invalid address", str(exc)) from None
    for ban in bans_in_force(service):
        if ban["address"] == address:
            return _record(ban)
    raise RpcFault(500, "Key name doesn't exist in htable.")


@method("htable.sets", "ipban address reason [seconds] → ban it (pks_ban row)")
async def htable_sets(service: AdminService, params: list[Any]) -> Any:
    _table(params)
    address = _param(params, 1, str, "address")
    reason = str(params[2]) if len(params) > 2 else ""
    seconds = float(params[3]) if len(params) > 3 and params[3] not in (None, "", 0) else None
    result = await service.write(guard.add_ban, address, reason, seconds)
    return _record(result["data"])


@method("htable.delete", "ipban address → lift its ban (row, automatic or cluster)")
async def htable_delete(service: AdminService, params: list[Any]) -> Any:
    _table(params)
    try:
        await _remove(service, _param(params, 1, str, "address"))
    except NotFound:
        raise RpcFault(500, "Key name doesn't exist in htable.") from None
    except Invalid as exc:
        raise RpcFault(500, "Invalid address", exc.problems) from None
    return None
