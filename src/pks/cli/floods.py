"""Beside the data path: ``pks ban list|add|rm`` (banned addresses and networks) and
``pks block list|add|rm`` (blocked destination prefixes) — docs/security.md."""

from __future__ import annotations

import time
from typing import Any

import typer

from pks.cli.context import JsonOption, backend
from pks.cli.output import emit, table
from pks.cli.tables import written

__all__ = ["ban_app", "block_app"]

ban_app = typer.Typer(
    help="Banned addresses and networks: their packets are dropped before parsing.",
    no_args_is_help=True,
)
block_app = typer.Typer(
    help="Blocked destination prefixes: calls to them get 403 (every peer, or one).",
    no_args_is_help=True,
)


def _when(value: Any) -> str:
    if not value:
        return "never"
    left = int(value - time.time())
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(value))
    return f"{stamp} ({left} s)" if left > 0 else f"{stamp} (expired)"


def _bans(answer: Any) -> str:
    """In force (the proxy's view), then the table rows when no proxy answered."""
    rows = answer["in_force"] if isinstance(answer, dict) else answer
    shown = [{**r, "expires": _when(r.get("expires"))} for r in rows]
    return table(shown, ["address", "origin", "expires", "reason"]) if shown else "no ban"


@ban_app.command("list")
def ban_list(as_json: bool = JsonOption) -> None:
    """List the bans in force (the table's, automatic ones, the cluster's)."""
    answer = backend(quiet=as_json).call("GET", "/api/v1/bans")
    emit(answer, as_json, _bans)


@ban_app.command("add")
def ban_add(
    address: str = typer.Argument(..., help="IP or IP/PREFIX (IPv4 or IPv6)"),
    reason: str = typer.Option("", help="why (shown by pks ban list, logged)"),
    seconds: float = typer.Option(None, help="how long (default: until removed)"),
    as_json: bool = JsonOption,
) -> None:
    """Ban an address or a network (a pks_ban row, applied by every instance)."""
    body = {"address": address, "reason": reason, "seconds": seconds}
    result = backend(quiet=as_json).call("POST", "/api/v1/bans", body)
    until = _when(result["data"]["expires"])
    written(result, as_json, f"{result['data']['address']} banned, until {until}")


@ban_app.command("rm")
def ban_rm(address: str, as_json: bool = JsonOption) -> None:
    """Lift a ban: the table's, or an automatic one (in the whole cluster with Redis)."""
    result = backend(quiet=as_json).call("DELETE", f"/api/v1/bans/{address}")
    written(result, as_json, f"ban of {result['data']['address']} lifted")


@block_app.command("list")
def block_list(as_json: bool = JsonOption) -> None:
    """List the blocked prefixes."""
    rows = backend(quiet=as_json).call("GET", "/api/v1/blocks")
    emit(rows, as_json, lambda r: table(r, ["id", "prefix", "tag", "reason"]) if r else "none")


@block_app.command("add")
def block_add(
    prefix: str = typer.Argument(..., help="digits a called number starts with, e.g. 00882"),
    tag: str = typer.Option(None, help="only for the peer of this tag (default: every peer)"),
    reason: str = typer.Option("", help="why: premium-rate, satellite, country…"),
    as_json: bool = JsonOption,
) -> None:
    """Block calls to numbers starting with PREFIX (403 Destination Blocked)."""
    body = {"prefix": prefix, "tag": tag, "reason": reason}
    result = backend(quiet=as_json).call("POST", "/api/v1/blocks", body)
    written(result, as_json, f"prefix {prefix} blocked (id {result['data']['id']})")


@block_app.command("rm")
def block_rm(block_id: int, as_json: bool = JsonOption) -> None:
    """Unblock a prefix (by the id pks block list shows)."""
    result = backend(quiet=as_json).call("DELETE", f"/api/v1/blocks/{block_id}")
    written(result, as_json, f"prefix {result['data']['prefix']} unblocked")
