"""Beside the data path: what every ``pks`` sub-command shares — settings and the backend."""

from __future__ import annotations

from dataclasses import dataclass

import typer

from pks.cli.backend import ApiBackend, DbBackend, choose
from pks.cli.output import fail
from pks.config import ConfigError, Settings

__all__ = ["JsonOption", "Options", "api", "backend", "options", "settings"]


@dataclass(slots=True)
class Options:
    force_db: bool = False


options = Options()
JsonOption = typer.Option(False, "--json", help="Print JSON for scripts.")


def settings() -> Settings:
    try:
        return Settings()
    except (ConfigError, ValueError) as exc:
        fail(f"configuration error: {exc}", code=2)


def backend(*, quiet: bool = False) -> ApiBackend | DbBackend:
    return choose(settings(), options.force_db, quiet=quiet)


def api() -> ApiBackend:
    """The running proxy's API (for live-only operations)."""
    chosen = choose(settings(), options.force_db, quiet=True)
    if not isinstance(chosen, ApiBackend):
        fail("this needs the running proxy: no admin API answers (check PKS_ADMIN_LISTEN)")
    return chosen
