"""Beside the data path: ``pks address|dialplan|dispatcher list|add|rm`` and the dispatcher's
live commands (``set-state``, ``set-alg``, ``set-ruri``, ``sets``)."""

from __future__ import annotations

from typing import Any

import typer

from pks.cli.context import JsonOption, api, backend
from pks.cli.output import emit, table

__all__ = ["address_app", "dialplan_app", "dispatcher_app"]

address_app = typer.Typer(
    help="The address table: who may send calls (grp 1 customers, 2 providers).",
    no_args_is_help=True,
)
dialplan_app = typer.Typer(
    help="The dialplan table: numbers → dispatcher set (dpid 1 DIDs, 2 routes).",
    no_args_is_help=True,
)
dispatcher_app = typer.Typer(
    help="The dispatcher table: gateways of each set, their live state.", no_args_is_help=True
)

COLUMNS = {
    "address": ["id", "grp", "ip_addr", "mask", "port", "tag", "owner"],
    "dialplan": ["id", "dpid", "pr", "match_op", "match_exp", "match_len", "subst_exp",
                 "repl_exp", "attrs", "owner"],
    "dispatcher": ["id", "setid", "destination", "flags", "priority", "attrs", "description",
                   "owner"],
}  # fmt: skip


def written(result: dict[str, Any], as_json: bool, what: str) -> None:
    def human(r: dict[str, Any]) -> str:
        live = "live now" if r["applied"] else r["reload"]
        return f"{what} ({live})"

    emit(result, as_json, human)


def _list(name: str, as_json: bool) -> None:
    rows = backend(quiet=as_json).call("GET", f"/api/v1/{name}")
    emit(rows, as_json, lambda r: table(r, COLUMNS[name]))


def _rm(name: str, row_id: int, as_json: bool) -> None:
    result = backend(quiet=as_json).call("DELETE", f"/api/v1/{name}/{row_id}")
    written(result, as_json, f"{name} row {row_id} deleted")


def _add(name: str, values: dict[str, Any], as_json: bool) -> None:
    values = {k: v for k, v in values.items() if v is not None}
    result = backend(quiet=as_json).call("POST", f"/api/v1/{name}", values)
    written(result, as_json, f"{name} row {result['data']['id']} added")


@address_app.command("list")
def address_list(as_json: bool = JsonOption) -> None:
    """List address rows (with the customer or provider owning each)."""
    _list("address", as_json)


@address_app.command("add")
def address_add(
    grp: int = typer.Option(..., help="1 = customer, 2 = provider"),
    ip: str = typer.Option(..., help="IP address"),
    mask: int = typer.Option(32),
    port: int = typer.Option(0, help="0 = any port"),
    tag: str = typer.Option(None),
    as_json: bool = JsonOption,
) -> None:
    """Add an address row (checked before writing)."""
    _add("address", {"grp": grp, "ip_addr": ip, "mask": mask, "port": port, "tag": tag}, as_json)


@address_app.command("rm")
def address_rm(row_id: int, as_json: bool = JsonOption) -> None:
    """Delete an address row by id."""
    _rm("address", row_id, as_json)


@dialplan_app.command("list")
def dialplan_list(as_json: bool = JsonOption) -> None:
    """List dialplan rules."""
    _list("dialplan", as_json)


@dialplan_app.command("add")
def dialplan_add(
    dpid: int = typer.Option(..., help="1 = DIDs, 2 = routes to providers"),
    match: str = typer.Option(..., help="match_exp"),
    attrs: str = typer.Option(..., help="the dispatcher set id"),
    op: int = typer.Option(1, help="0 equal, 1 regex, 2 fnmatch"),
    pr: int = typer.Option(0, help="priority, lower first"),
    length: int = typer.Option(0, "--len", help="match_len: whole number length, 0 = any"),
    subst: str = typer.Option(""),
    repl: str = typer.Option(""),
    as_json: bool = JsonOption,
) -> None:
    """Add a dialplan rule (the regex is compiled by the router's engine first)."""
    values = {
        "dpid": dpid,
        "pr": pr,
        "match_op": op,
        "match_exp": match,
        "match_len": length,
        "subst_exp": subst,
        "repl_exp": repl,
        "attrs": attrs,
    }
    _add("dialplan", values, as_json)


@dialplan_app.command("rm")
def dialplan_rm(row_id: int, as_json: bool = JsonOption) -> None:
    """Delete a dialplan rule by id."""
    _rm("dialplan", row_id, as_json)


@dispatcher_app.command("list")
def dispatcher_list(as_json: bool = JsonOption) -> None:
    """List gateways (rows of the dispatcher table)."""
    _list("dispatcher", as_json)


@dispatcher_app.command("add")
def dispatcher_add(
    setid: int = typer.Option(...),
    uri: str = typer.Option(..., help="SIP URI of the gateway"),
    flags: int = typer.Option(0),
    priority: int = typer.Option(0),
    attrs: str = typer.Option("", help="e.g. sockname=public;weight=50"),
    description: str = typer.Option(""),
    as_json: bool = JsonOption,
) -> None:
    """Add a gateway to a set."""
    values = {
        "setid": setid,
        "destination": uri,
        "flags": flags,
        "priority": priority,
        "attrs": attrs,
        "description": description,
    }
    _add("dispatcher", values, as_json)


@dispatcher_app.command("rm")
def dispatcher_rm(row_id: int, as_json: bool = JsonOption) -> None:
    """Delete a gateway row by id."""
    _rm("dispatcher", row_id, as_json)


@dispatcher_app.command("sets")
def dispatcher_sets(as_json: bool = JsonOption) -> None:
    """List sets with their algorithm, R-URI host (keep or gateway) and gateway count."""
    rows = backend(quiet=as_json).call("GET", "/api/v1/sets")
    columns = ["setid", "algorithm", "ruri_host", "gateways", "owner"]
    emit(rows, as_json, lambda r: table(r, columns))


@dispatcher_app.command("set-alg")
def dispatcher_set_alg(setid: int, algorithm: str, as_json: bool = JsonOption) -> None:
    """Set a set's distribution algorithm (round-robin, priority, weighted, … or a number)."""
    result = backend(quiet=as_json).call("PUT", f"/api/v1/sets/{setid}", {"algorithm": algorithm})
    written(result, as_json, f"set {setid} uses {result['data']['algorithm']}")


@dispatcher_app.command("set-ruri")
def dispatcher_set_ruri(
    setid: int,
    mode: str = typer.Argument(
        ...,
        help="keep: the caller's R-URI host (like ds_select_dst, the default); gateway: the"
        " chosen gateway's host, port and transport (like ds_select_domain)",
    ),
    as_json: bool = JsonOption,
) -> None:
    """Set what the R-URI host of calls to a set's gateways becomes: keep or gateway."""
    result = backend(quiet=as_json).call("PUT", f"/api/v1/sets/{setid}", {"ruri_host": mode})
    written(result, as_json, f"set {setid} R-URI host: {result['data']['ruri_host']}")


@dispatcher_app.command("set-state")
def dispatcher_set_state(
    state: str = typer.Argument(..., help="active, inactive, probing, disabled (or a, i, t, d)"),
    setid: int = typer.Argument(...),
    uri: str = typer.Argument(..., help="the gateway URI, or 'all'"),
) -> None:
    """Change a gateway's live state (like kamcmd dispatcher.set_state)."""
    typer.echo(api().rpc("dispatcher.set_state", state, setid, uri))


@dispatcher_app.command("state")
def dispatcher_state(as_json: bool = JsonOption) -> None:
    """The live gateways of every set with their state (like kamcmd dispatcher.list)."""
    result = api().rpc("dispatcher.list")
    rows = [
        {
            "set": r["SET"]["ID"],
            "alg": r["SET"].get("ALG"),
            "uri": d["DEST"]["URI"],
            "flags": d["DEST"]["FLAGS"],
            "priority": d["DEST"]["PRIORITY"],
            "state": d["DEST"].get("STATE"),
            "calls": d["DEST"].get("RUNTIME", {}).get("DLGLOAD"),
            **_probe_columns(d["DEST"].get("PROBE") or {}),
        }
        for r in result["RECORDS"]
        for d in r["SET"]["TARGETS"]
    ]
    columns = ["set", "alg", "uri", "flags", "priority", "state", "calls", "last", "avg_ms"]
    emit(result, as_json, lambda _: table(rows, columns))


def _probe_columns(probe: dict[str, Any]) -> dict[str, Any]:
    """The last probe answer and the average probe latency, for the state table."""
    latency = probe.get("latency") or {}
    last = probe.get("last_code")
    return {
        "last": "" if last is None else f"{last} {probe.get('last_reason') or ''}".strip(),
        "avg_ms": latency.get("avg_ms", ""),
    }
