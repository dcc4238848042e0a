"""Beside the data path: ``pks customer|provider add|list|show|rm`` — whole objects written
in one checked transaction (see :mod:`pks.provision.peers` for what each field means)."""

from __future__ import annotations

from typing import Any

import typer

from pks.cli.context import JsonOption, backend
from pks.cli.output import emit, table
from pks.cli.tables import written

__all__ = ["customer_app", "provider_app"]


GATEWAY_COLUMNS = ["id", "uri", "priority", "flags", "attrs"]
NUMBER_COLUMNS = ["id", "dpid", "pr", "match_op", "match_exp"]


def _summary(peers: list[dict[str, Any]]) -> str:
    rows = [
        {
            **p,
            "sources": len(p["sources"]),
            "gateways": len(p["gateways"]),
            "numbers": len(p["numbers"]),
        }
        for p in peers
    ]
    return table(rows, ["name", "tag", "setid", "socket", "sources", "gateways", "numbers"])


def _whole(p: dict[str, Any]) -> str:
    head = [
        f"{p['kind']} {p['name']}: tag {p['tag']}, set {p['setid']}"
        f", socket {p['socket'] or '-'}, algorithm {p['algorithm'] or 'default'}"
        f", R-URI host {p.get('ruri_host') or 'keep'}"
    ]
    if p.get("description"):
        head.append(p["description"])
    parts = [
        "\n".join(head),
        "sources (address):\n" + table(p["sources"], ["id", "ip", "mask", "port"]),
        "gateways (dispatcher):\n" + table(p["gateways"], GATEWAY_COLUMNS),
        "numbers (dialplan):\n" + table(p["numbers"], NUMBER_COLUMNS),
    ]
    return "\n\n".join(parts)


def _app(kind: str, numbers_flag: str, numbers_help: str) -> typer.Typer:
    app = typer.Typer(
        help=f"{kind.capitalize()}s: sources, gateways and numbers as one object.",
        no_args_is_help=True,
    )
    path = f"/api/v1/{kind}s"

    @app.command("add")
    def add(
        name: str = typer.Argument(...),
        source: list[str] = typer.Option([], "--source", help="IP, IP/MASK, IP:PORT (repeat)"),  # noqa: B008 - typer's style
        gateway: list[str] = typer.Option([], "--gateway", help="SIP URI (repeat)"),  # noqa: B008 - typer's style
        number: list[str] = typer.Option([], numbers_flag, help=numbers_help),  # noqa: B008 - typer's style
        tag: str = typer.Option(None, help="address tag (default: the name)"),
        setid: int = typer.Option(None, help="dispatcher set (default: next free)"),
        socket: str = typer.Option(None, help="socket name to reach the gateways"),
        algorithm: str = typer.Option(None, help="the set's algorithm"),
        ruri_host: str = typer.Option(
            None, help="keep (the caller's R-URI host, default) or gateway (the gateway's)"
        ),
        max_calls: int = typer.Option(None),
        max_cps: int = typer.Option(None, help="new calls per second from its sources"),
        max_intl_calls: int = typer.Option(None, help="concurrent international calls"),
        description: str = typer.Option(""),
        as_json: bool = JsonOption,
    ) -> None:
        spec = {
            "name": name,
            "sources": source,
            "gateways": gateway,
            "numbers": number,
            "tag": tag,
            "setid": setid,
            "socket": socket,
            "algorithm": algorithm,
            "ruri_host": ruri_host,
            "max_calls": max_calls,
            "max_cps": max_cps,
            "max_intl_calls": max_intl_calls,
            "description": description,
        }
        spec = {k: v for k, v in spec.items() if v is not None}
        body = {
            ("dids" if kind == "customer" else "routes") if k == "numbers" else k: v
            for k, v in spec.items()
        }
        result = backend(quiet=as_json).call("POST", path, body)
        written(result, as_json, f"{kind} {name} added, set {result['data']['setid']}")

    add.__doc__ = f"Create a {kind} and all its rows in one transaction."

    @app.command("list")
    def list_all(as_json: bool = JsonOption) -> None:
        emit(backend(quiet=as_json).call("GET", path), as_json, _summary)

    list_all.__doc__ = f"List {kind}s."

    @app.command("show")
    def show(name: str, as_json: bool = JsonOption) -> None:
        emit(backend(quiet=as_json).call("GET", f"{path}/{name}"), as_json, _whole)

    show.__doc__ = f"Show a {kind} whole: sources, gateways, numbers."

    @app.command("rm")
    def rm(name: str, as_json: bool = JsonOption) -> None:
        result = backend(quiet=as_json).call("DELETE", f"{path}/{name}")
        written(result, as_json, f"{kind} {name} removed with every row it owned")

    rm.__doc__ = f"Remove a {kind} and every row it owns."

    @app.command("limits")
    def limits(
        name: str,
        max_calls: int = typer.Option(None, help="concurrent calls (0: unlimited)"),
        max_cps: int = typer.Option(None, help="new calls per second (0: unlimited)"),
        max_intl_calls: int = typer.Option(None, help="international calls (0: unlimited)"),
        as_json: bool = JsonOption,
    ) -> None:
        body = {
            k: v
            for k, v in (
                ("max_calls", max_calls),
                ("max_cps", max_cps),
                ("max_intl_calls", max_intl_calls),
            )
            if v is not None
        }
        result = backend(quiet=as_json).call("PATCH", f"{path}/{name}/limits", body)
        shown = ", ".join(f"{k} {result['data'][k] or 'unlimited'}" for k in sorted(body))
        written(result, as_json, f"{kind} {name}: {shown}")

    limits.__doc__ = f"Change a {kind}'s limits: max_calls, max_cps, max_intl_calls."
    return app


customer_app = _app("customer", "--did", "DID: 33202020201, 33202020200-209, 3320*, re:…, glob:…")
provider_app = _app("provider", "--route", "route: +33*, an exact number, a range, re:…, glob:…")
