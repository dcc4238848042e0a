"""Beside the data path: the ``pks`` command — run the proxy, operate a running one through
its admin API, and provision the tables (through the API, or on the database when no proxy
runs). Human output is aligned tables; ``--json`` prints JSON; failures exit non-zero
(1 refused or failed, 2 bad usage or configuration, 3 ``route explain``: not forwarded)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import typer

from pks import logs
from pks.cli.cdr import cdr_app
from pks.cli.context import JsonOption, api, options, settings
from pks.cli.db import db_app
from pks.cli.floods import ban_app, block_app
from pks.cli.output import emit, fail
from pks.cli.peers import customer_app, provider_app
from pks.cli.tables import address_app, dialplan_app, dispatcher_app
from pks.cli.tools import export_command, import_command, route_app

# plain help, as click prints it: Typer's rich panels mark every flag "<bool>", as if it took
# a value (sub-commands inherit the mode)
app = typer.Typer(
    help="pks-sip-proxy: SIP interconnection proxy.", no_args_is_help=True, rich_markup_mode=None
)
app.add_typer(db_app, name="db")


@app.callback()
def main_options(
    db: bool = typer.Option(False, "--db", help="Provision the database (PKS_DB_URL) directly."),
) -> None:
    options.force_db = db


@app.command()
def run(
    worker: str = typer.Option("", "--worker", hidden=True, help="INDEX:STORE (supervisor's)"),
    sockets: str = typer.Option("", "--sockets", hidden=True, help="FD,… (supervisor's)"),
) -> None:
    """Run the proxy in the foreground (configuration from PKS_* variables).

    With PKS_WORKERS > 1 this process supervises that many worker processes."""
    config = settings()
    tag = f"[w{worker.partition(':')[0]}]" if worker else ""
    logs.setup(config.log_level, tag)  # stderr; under systemd, the journal's form
    if config.worker_count > 1 and not worker:
        from pks.workers.supervisor import Supervisor

        raise typer.Exit(Supervisor(config).run())
    from pks.server import Server  # the supervisor above has no use for it

    if worker:
        from pks.workers.supervisor import run_worker

        raise typer.Exit(run_worker(worker, sockets, lambda node: Server(config, node).run()))
    from pks.loop import new_event_loop

    loop = new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(Server(config).run())
    except Exception as exc:
        logging.getLogger("pks").error("pks: cannot start: %s", exc)
        raise typer.Exit(1) from None
    finally:
        loop.close()


@app.command()
def reload() -> None:
    """Reload the routing tables of the running proxy (atomic; the old ones stay on error)."""
    body = api().call("POST", "/reload")
    typer.echo(body["message"])


@app.command()
def status(as_json: bool = JsonOption) -> None:
    """Version, uptime and routing tables of the running proxy."""
    body = api().call("GET", "/status")

    def human(s: dict[str, Any]) -> str:
        routing = s.get("routing")
        lines = [
            f"pks {s['version']}, up {s['uptime']:.0f} s",
            f"routing: {'loaded' if s['routing_loaded'] else 'NOT loaded'}",
        ]
        if isinstance(routing, dict):
            lines.append("  " + ", ".join(f"{k} {v}" for k, v in routing.items() if v is not None))
        if s.get("last_reload"):
            lines.append(f"last reload: {s['last_reload']}")
        drops = ", ".join(f"{k} {v}" for k, v in (s.get("tcp_drops") or {}).items() if v)
        if drops:
            lines.append(f"TCP connections closed by the bounds: {drops}")
        return "\n".join(lines)

    emit(body, as_json, human)
    if not body.get("routing_loaded"):
        fail("routing tables are not loaded")


app.add_typer(customer_app, name="customer")
app.add_typer(provider_app, name="provider")
app.add_typer(address_app, name="address")
app.add_typer(dialplan_app, name="dialplan")
app.add_typer(dispatcher_app, name="dispatcher")
app.add_typer(route_app, name="route")
app.add_typer(ban_app, name="ban")
app.add_typer(block_app, name="block")
app.add_typer(cdr_app, name="cdr")
app.command("import")(import_command)
app.command("export")(export_command)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
