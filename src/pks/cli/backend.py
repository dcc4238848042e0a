"""Beside the data path: where the ``pks`` command sends its work.

Live operations (reload, status, gateway states, explanations of the live routing) need the
running proxy's admin API. Provisioning works either way: through the API when the proxy
answers (the change is then checked against its sockets and live at once), else directly
on the database named by ``PKS_DB_URL`` (the proxy loads it when it starts or reloads).
The command always says which one it used. ``--db`` forces the database.
"""

from __future__ import annotations

from typing import Any

import httpx

from pks.cli.output import fail, note
from pks.config import Settings

__all__ = ["ApiBackend", "Backend", "DbBackend", "choose"]


class Backend:
    """The operations the CLI needs; each returns the same dicts as the REST API."""

    live = False

    def call(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        raise NotImplementedError


class ApiBackend(Backend):
    """The running proxy's admin API."""

    live = True

    def __init__(self, settings: Settings) -> None:
        self.base = f"http://{settings.admin_address}"
        token = settings.admin_token  # PKS_ADMIN_TOKEN, the one the proxy checks
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def call(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        headers = self.headers
        if method != "GET":  # the API takes writes as JSON only, a body-less one too
            headers = {**headers, "Content-Type": "application/json"}
        try:
            resp = httpx.request(
                method,
                self.base + path,
                json=body,
                params=params or None,
                headers=headers,
                timeout=60,
            )
        except httpx.HTTPError as exc:
            fail(f"cannot reach the admin API at {self.base}: {exc}")
        answer = resp.json() if resp.content else None
        if resp.status_code >= 400:
            detail = answer.get("detail") if isinstance(answer, dict) else resp.text
            problems = answer.get("problems", []) if isinstance(answer, dict) else []
            if isinstance(detail, list):  # request validation: pydantic's list of errors
                problems = [f"{'.'.join(map(str, d['loc'][1:]))}: {d['msg']}" for d in detail]
                detail = "invalid request"
            fail(str(detail), problems)
        return answer

    def rpc(self, method: str, *params: Any) -> Any:
        answer = self.call(
            "POST", "/RPC", {"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}
        )
        if "error" in answer:
            error = answer["error"]
            data = error.get("data")
            fail(f"{error['code']} - {error['message']}", [str(data)] if data else [])
        return answer["result"]


class DbBackend(Backend):
    """The database itself (``PKS_DB_URL``), for provisioning while no proxy runs."""

    def __init__(self, settings: Settings) -> None:
        from pks.db.engine import make_engine

        self.engine = make_engine(settings.db_url)

    def call(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        from pks.provision import ProvisionError

        try:
            return self._dispatch(method, path.removeprefix("/api/v1/").split("/"), body, params)
        except ProvisionError as exc:
            fail(exc.message, exc.problems)

    def _dispatch(self, method: str, parts: list[str], body: Any, params: dict[str, Any]) -> Any:
        from pks.provision import tables, transfer  # only the database mode needs them

        e, head = self.engine, parts[0]
        if head in ("customers", "providers"):
            return self._peers(method, head[:-1], parts, body)
        if head == "sets":
            return self._sets(method, parts, body)
        if head in ("bans", "blocks") or parts[-1] == "limits":
            return self._floods(method, parts, body)
        if head == "import":
            return self._written(
                transfer.import_tables(e, body["files"], check_only=body["check_only"])
            )
        if head == "export":
            return transfer.export_tables(e, params["table"], colon=params["format"] == "dbtext")
        if method == "GET":
            return (
                tables.get_row(e, head, int(parts[1]))
                if len(parts) > 1
                else tables.list_rows(e, head)
            )
        if method == "POST":
            return self._written(tables.create_row(e, head, body))
        if method == "DELETE":
            return self._written(tables.delete_row(e, head, int(parts[1])))
        raise NotImplementedError(f"{method} /{'/'.join(parts)} has no database mode")

    def _peers(self, method: str, kind: str, parts: list[str], body: Any) -> Any:
        from pks.provision import peers

        e = self.engine
        if method == "GET":
            return (
                peers.get_peer(e, kind, parts[1]) if len(parts) > 1 else peers.list_peers(e, kind)
            )
        if method == "POST":
            return self._written(peers.create_peer(e, kind, body))
        if method == "DELETE":
            return self._written(peers.delete_peer(e, kind, parts[1]))
        raise NotImplementedError(f"{method} /{'/'.join(parts)} has no database mode")

    def _sets(self, method: str, parts: list[str], body: Any) -> Any:
        from pks.provision import tables

        e = self.engine
        if method == "GET":
            return tables.list_sets(e)
        if method == "PUT":
            return self._written(
                tables.put_set(e, int(parts[1]), body.get("algorithm"), body.get("ruri_host"))
            )
        if method == "DELETE":
            return self._written(tables.delete_set(e, int(parts[1])))
        raise NotImplementedError(f"{method} /{'/'.join(parts)} has no database mode")

    def _floods(self, method: str, parts: list[str], body: Any) -> Any:
        from pks.provision import guard

        e = self.engine
        if parts[-1] == "limits":  # PATCH customers|providers/NAME/limits
            return self._written(guard.set_limits(e, parts[0][:-1], parts[1], body))
        if parts[0] == "bans":
            if method == "GET":
                return {"in_force": guard.list_bans(e), "table": guard.list_bans(e)}
            if method == "POST":
                return self._written(
                    guard.add_ban(e, body["address"], body["reason"], body["seconds"])
                )
            return self._written(guard.delete_ban(e, "/".join(parts[1:])))
        if method == "GET":
            return guard.list_blocks(e)
        if method == "POST":
            return self._written(guard.add_block(e, body["prefix"], body["tag"], body["reason"]))
        return self._written(guard.delete_block(e, int(parts[1])))

    @staticmethod
    def _written(data: Any) -> dict[str, Any]:
        return {"data": data, "applied": False, "reload": "written to the database only"}

    def rows(self) -> Any:
        from pks.provision.store import read_all

        return read_all(self.engine)


def choose(settings: Settings, force_db: bool, *, quiet: bool = False) -> ApiBackend | DbBackend:
    """The API if the proxy answers (and ``--db`` is not given), else the database."""
    if not force_db:
        api = ApiBackend(settings)
        try:
            httpx.get(api.base + "/status", headers=api.headers, timeout=2)
        except httpx.HTTPError:
            pass
        else:
            if not quiet:
                note(f"pks: using the running proxy's admin API at {api.base}")
            return api
        if not quiet:
            note(f"pks: no proxy answers at {api.base}; working on the database directly")
    backend = DbBackend(settings)
    if not quiet:
        from pks.db.engine import describe

        # pks.db.watch: a running proxy applies every change it sees (PostgreSQL LISTEN/NOTIFY,
        # else a check every PKS_DB_POLL_INTERVAL) without being told
        note(
            f"pks: database {describe(backend.engine)} (a running proxy applies the changes"
            " by itself within about a second, PKS_DB_POLL_INTERVAL)"
        )
    return backend
