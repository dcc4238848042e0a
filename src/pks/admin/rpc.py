"""Beside the data path: JSON-RPC 2.0 at ``POST /RPC`` with kamcmd's method names.

Names, parameters, answers and fault texts follow Kamailio 5.6 (kamailio-semantics.md §1.5,
§2.6, §3.11, §6) so that an operator's ``kamcmd`` habits and scripts carry over; structures
are those of Kamailio's jsonrpcs module (arrays of one-key objects such as
``{"SET": {...}}``). Differences, on purpose:

* the three ``*.reload`` methods each reload the whole routing snapshot (the tables are
  checked together and swapped as one), and there is no 5 s ``reload_delta`` refusal;
* ``permissions.addressDump``'s ``table`` is the entry's position (we have no hash buckets);
* new: ``permissions.testSource`` (ip, port → allowed, group, tag, row),
  ``dialplan.translate`` also names the matched rule, ``dispatcher.list`` adds each
  destination's ``STATE`` and ``LATENCY`` from the health checker.

Faults are JSON-RPC errors with Kamailio's code and text (``500 No translation``); protocol
errors use the JSON-RPC codes (-32700 parse error, -32600, -32601 unknown method, -32602).
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from pks import __version__
from pks.admin.service import AdminService, NotReady
from pks.health.state import flags_letters
from pks.route.authorize import authorize
from pks.route.dispatch import Destination
from pks.route.explain import address_entry
from pks.route.lookup import TranslateError, lookup, translate

__all__ = ["METHODS", "RpcFault", "build_rpc"]

Handler = Callable[[AdminService, list[Any]], Awaitable[Any]]
METHODS: dict[str, tuple[Handler, str]] = {}


class RpcFault(Exception):
    """A Kamailio-style fault: ``code`` and message."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code, self.message, self.data = code, message, data


def method(name: str, doc: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        METHODS[name] = (fn, doc)
        return fn

    return register


def _param(params: list[Any], index: int, kind: type, name: str) -> Any:
    if index >= len(params):
        raise RpcFault(500, "Invalid Parameters", f"missing parameter {name}")
    value = params[index]
    if kind is int and isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if kind is str and isinstance(value, str) and value.startswith("s:"):
        value = value[2:]  # kamcmd's string marker
    if not isinstance(value, kind) or isinstance(value, bool):
        raise RpcFault(500, "Invalid Parameters", f"{name} must be a {kind.__name__}")
    return value


async def _reload(service: AdminService, fault: str) -> str:
    result = await service.instance.reload()
    if not result.ok:
        raise RpcFault(500, fault, result.message)
    return result.message


# -- core / tm ------------------------------------------------------------------------------


@method("core.version", "the proxy's version string")
async def core_version(service: AdminService, params: list[Any]) -> Any:
    return f"pks-sip-proxy {__version__}"


@method("core.uptime", "{now, up_since, uptime} (uptime in seconds)")
async def core_uptime(service: AdminService, params: list[Any]) -> Any:
    now, since = time.time(), service.instance.started_at
    return {"now": time.ctime(now), "up_since": time.ctime(since), "uptime": int(now - since)}


@method("tm.stats", "transaction counters, as Kamailio's tm.stats (every worker's summed)")
async def tm_stats(service: AdminService, params: list[Any]) -> Any:
    stats, current = await service.instance.transaction_stats()
    names = ("total_local", "rpl_received", "rpl_generated", "rpl_sent")
    return {
        "current": current,
        "waiting": stats.get("waiting", 0),
        "total": stats.get("created", 0),
        **{n: stats.get(n, 0) for n in names},
        **{f"{c}xx": stats.get(f"{c}xx", 0) for c in (6, 5, 4, 3, 2)},
        "created": stats.get("created", 0),
        "freed": stats.get("freed", 0),
        "delayed_free": 0,
    }


@method("system.listMethods", "the methods this endpoint answers")
async def list_methods(service: AdminService, params: list[Any]) -> Any:
    return sorted(METHODS)


# -- permissions ----------------------------------------------------------------------------


@method("permissions.addressReload", "reload the routing tables → 'Reload OK'")
async def address_reload(service: AdminService, params: list[Any]) -> Any:
    await _reload(service, "Reload failed.")
    return "Reload OK"


@method("permissions.addressDump", "exact (/32, /128) address entries")
async def address_dump(service: AdminService, params: list[Any]) -> Any:
    entries = service.snapshot.address_dump()
    return [
        {"table": i, "group": e.grp, "item": {"ip": e.ip, "port": e.port, "tag": e.tag or "NULL"}}
        for i, e in enumerate(entries)
    ]


@method("permissions.subnetDump", "subnet entries in matching order")
async def subnet_dump(service: AdminService, params: list[Any]) -> Any:
    return [
        {
            "id": i,
            "group": e.grp,
            "item": {"ip": e.ip, "mask": e.mask, "port": e.port, "tag": e.tag or ""},
        }
        for i, e in enumerate(service.snapshot.subnet_dump())
    ]


@method("permissions.testSource", "ip [port] → {allowed, group, tag, id, match}")
async def test_source(service: AdminService, params: list[Any]) -> Any:
    ip = _param(params, 0, str, "ip")
    port = _param(params, 1, int, "port") if len(params) > 1 else 5060
    snap = service.snapshot
    peer = authorize(snap, ip, port)
    if peer is None:
        return {"ip": ip, "port": port, "allowed": False}
    entry = address_entry(snap, ip, port)
    return {
        "ip": ip,
        "port": port,
        "allowed": True,
        "group": peer.grp,
        "tag": peer.tag,
        "id": None if entry is None else entry.id,
        "match": None if entry is None else f"{entry.ip}/{entry.mask}:{entry.port}",
    }


# -- dialplan -------------------------------------------------------------------------------


@method("dialplan.reload", "reload the routing tables (empty answer, like Kamailio)")
async def dialplan_reload(service: AdminService, params: list[Any]) -> Any:
    await _reload(service, "Dialplan Reload Failed")
    return None


@method("dialplan.dump", "dpid → {DPID, ENTRIES} in evaluation order")
async def dialplan_dump(service: AdminService, params: list[Any]) -> Any:
    if not params:
        raise RpcFault(500, "Missing parameter")
    dpid = _param(params, 0, int, "dpid")
    rules = service.snapshot.dialplan_dump(dpid)
    if rules is None:
        raise RpcFault(500, "Dialplan ID not matched")
    return {
        "DPID": dpid,
        "ENTRIES": [
            {
                "ENTRY": {
                    "PRIO": r.pr,
                    "MATCHOP": r.match_op,
                    "MATCHEXP": r.match_exp,
                    "MATCHLEN": r.match_len,
                    "SUBSTEXP": r.subst_exp,
                    "REPLEXP": r.repl_exp,
                    "ATTRS": r.attrs,
                    "ID": r.id,
                }
            }
            for r in rules
        ],
    }


@method("dialplan.translate", "dpid input → {Output, Attributes, Rule}")
async def dialplan_translate(service: AdminService, params: list[Any]) -> Any:
    dpid = _param(params, 0, int, "dpid")
    text = _param(params, 1, str, "input")
    snap = service.snapshot
    try:
        output, attrs = translate(snap, dpid, text)
    except TranslateError as exc:
        raise RpcFault(500, str(exc)) from None
    match = lookup(snap, dpid, text)
    return {"Output": output, "Attributes": attrs, "Rule": None if match is None else match.rule_id}


# -- dispatcher -----------------------------------------------------------------------------


@method("dispatcher.reload", "reload the routing tables")
async def dispatcher_reload(service: AdminService, params: list[Any]) -> Any:
    await _reload(service, "Reload Failed")
    return "Ok. Dispatcher successfully reloaded."


def _dest(service: AdminService, dest: Destination, mode: str) -> dict[str, Any]:
    proxy = service.instance.proxy
    state = proxy.gateways.describe(dest.target) if proxy is not None else None
    out: dict[str, Any] = {
        "URI": dest.uri,
        "FLAGS": state["flags"] if state else flags_letters(dest.flags),
        "PRIORITY": dest.priority,
    }
    if dest.attrs and mode != "short":
        attrs = dict(dest.attr_map)
        out["ATTRS"] = {
            "BODY": dest.attrs,
            "DUID": attrs.get("duid", ""),
            "MAXLOAD": _int(attrs.get("maxload")),
            "WEIGHT": _int(attrs.get("weight")),
            "RWEIGHT": _int(attrs.get("rweight")),
            "SOCKET": attrs.get("socket", ""),
            "SOCKNAME": attrs.get("sockname") or attrs.get("socketname", ""),
            "OBPROXY": attrs.get("obproxy", ""),
        }
    if state is not None:
        out["STATE"] = state["state"]
        if state.get("latency"):
            lat = state["latency"]
            out["LATENCY"] = {"AVG": lat["avg_ms"], "STD": lat["std_ms"], "LAST": lat["last_ms"]}
        out["RUNTIME"] = {"DLGLOAD": state.get("load", 0), "MAXLOAD": state.get("maxload")}
        out["PROBE"] = {
            key: state.get(key)
            for key in (
                "probing",
                "failures",
                "successes",
                "last_code",
                "last_reason",
                "last_probe_at",
                "latency",
            )
        }
    if mode == "full":
        target = dest.target
        out.update(
            HOST=target.host,
            PORT=target.port,
            PROTOID=target.proto.value,
            SOCKET=target.socket_name or "",
        )
    return out


def _int(value: str | None) -> int:
    return int(value) if value and value.isdigit() else 0


@method("dispatcher.list", "[short|full] → {NRSETS, RECORDS: [{SET: {ID, TARGETS}}]}")
async def dispatcher_list(service: AdminService, params: list[Any]) -> Any:
    mode = _param(params, 0, str, "mode") if params else ""
    sets = service.snapshot.dispatcher_sets()
    if not sets:
        raise RpcFault(500, "No Destination Sets")
    return {
        "NRSETS": len(sets),
        "RECORDS": [
            {
                "SET": {
                    "ID": s.setid,
                    "ALG": s.algorithm,
                    "RURI_HOST": s.ruri_host,  # ours: keep or gateway (pks_set.ruri_host)
                    "TARGETS": [{"DEST": _dest(service, d, mode)} for d in s.destinations],
                }
            }
            for s in sets
        ],
    }


@method("dispatcher.set_state", "state group uri|all → 'Ok. Dispatcher state updated.'")
async def dispatcher_set_state(service: AdminService, params: list[Any]) -> Any:
    if len(params) < 3:
        raise RpcFault(500, "Invalid Parameters")
    state = _param(params, 0, str, "state")
    group = _param(params, 1, int, "group")
    uri = _param(params, 2, str, "uri")
    proxy = service.instance.proxy
    if proxy is None:
        raise RpcFault(500, "State Update Failed", "the proxy is not running")
    try:
        changed = proxy.gateways.set_state(group, None if uri == "all" else uri, state)
    except ValueError as exc:
        raise RpcFault(500, "Unknown State Value", str(exc)) from None
    if changed == 0 and uri != "all":
        raise RpcFault(500, "State Update Failed", f"no destination {uri} in set {group}")
    return "Ok. Dispatcher state updated."


@method("dispatcher.ping_active", "[0|1] → {OldPingState[, NewPingState]}")
async def dispatcher_ping_active(service: AdminService, params: list[Any]) -> Any:
    proxy = service.instance.proxy
    if proxy is None:
        raise RpcFault(500, "Ping State Update Failed")
    old = int(proxy.gateways.ping_active)
    if not params:
        return {"OldPingState": old}
    new = _param(params, 0, int, "state")
    if new not in (0, 1):
        raise RpcFault(500, "Ping State Update Failed", "state is 0 or 1")
    proxy.gateways.ping_active = bool(new)
    return {"NewPingState": new, "OldPingState": old}


# -- the endpoint ---------------------------------------------------------------------------


def _error(ident: Any, code: int, message: str, data: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": ident, "error": error}


async def _call(service: AdminService, request: Any) -> dict[str, Any] | None:
    if (
        not isinstance(request, dict)
        or request.get("jsonrpc") != "2.0"
        or not isinstance(request.get("method"), str)
    ):
        return _error(None, -32600, "Invalid Request")
    ident, name = request.get("id"), request["method"]
    params = request.get("params", [])
    if isinstance(params, dict):
        params = list(params.values())
    if not isinstance(params, list):
        return _error(ident, -32602, "Invalid params")
    entry = METHODS.get(name)
    if entry is None:
        return _error(ident, -32601, "Method not found", name)
    try:
        result = await entry[0](service, params)
    except RpcFault as fault:
        return _error(ident, fault.code, fault.message, fault.data)
    except NotReady as exc:
        return _error(ident, 500, "Not ready", str(exc))
    if "id" not in request:
        return None  # a notification: no answer
    return {"jsonrpc": "2.0", "id": ident, "result": result}


def build_rpc(service: AdminService) -> APIRouter:
    router = APIRouter()

    @router.post("/RPC", tags=["rpc"], summary="JSON-RPC 2.0 with kamcmd's method names")
    async def rpc(request: Request) -> Response:
        try:
            body = json.loads(await request.body())
        except ValueError:
            return JSONResponse(_error(None, -32700, "Parse error"))
        if isinstance(body, list):
            if not body:
                return JSONResponse(_error(None, -32600, "Invalid Request"))
            answers = [a for a in [await _call(service, r) for r in body] if a is not None]
            return JSONResponse(answers) if answers else Response(status_code=204)
        answer = await _call(service, body)
        return JSONResponse(answer) if answer is not None else Response(status_code=204)

    return router
