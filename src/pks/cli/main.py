"""The ``pks`` command: run the proxy, and operate a running one through its admin API."""

from __future__ import annotations

import asyncio
import logging
import sys

import httpx
import typer

from pks.cli.db import db_app
from pks.config import ConfigError, Settings

app = typer.Typer(help="pks-sip-proxy: SIP interconnection proxy.", no_args_is_help=True)
app.add_typer(db_app, name="db")


def _settings() -> Settings:
    try:
        return Settings()
    except (ConfigError, ValueError) as exc:
        typer.echo(f"pks: configuration error: {exc}", err=True)
        raise typer.Exit(2) from None


def _admin(settings: Settings, method: str, path: str) -> httpx.Response:
    addr = settings.admin_address
    headers = {"Authorization": f"Bearer {settings.admin_token}"} if settings.admin_token else {}
    try:
        return httpx.request(method, f"http://{addr}{path}", headers=headers, timeout=30)
    except httpx.HTTPError as exc:
        typer.echo(f"pks: cannot reach the admin API at {addr}: {exc}", err=True)
        raise typer.Exit(1) from None


@app.command()
def run() -> None:
    """Run the proxy in the foreground (configuration from PKS_* variables)."""
    settings = _settings()
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from pks.loop import new_event_loop
    from pks.server import Server

    loop = new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(Server(settings).run())
    except Exception as exc:
        logging.getLogger("pks").error("pks: cannot start: %s", exc)
        raise typer.Exit(1) from None
    finally:
        loop.close()


@app.command()
def reload() -> None:
    """Reload the routing tables of the running proxy (atomic; the old ones stay on error)."""
    resp = _admin(_settings(), "POST", "/reload")
    body = resp.json()
    if resp.status_code != 200:
        typer.echo(f"pks: {body.get('detail', body)}", err=True)
        raise typer.Exit(1)
    typer.echo(body["message"])


def main() -> None:
    app()


if __name__ == "__main__":
    main()
