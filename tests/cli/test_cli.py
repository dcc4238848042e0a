"""The ``pks`` command through subprocess: on the database when no proxy runs, through the
admin API of a real ``pks run`` otherwise; exit codes, tables, --json, nothing written on a
refusal. Uses the seed README's tables (tests/cli/seed, verbatim)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from servers import free_port, free_tcp_port

SEED = Path(__file__).parent / "seed"


class Pks:
    """Runs ``python -m pks`` with a given environment."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.env, self.cwd = env, cwd

    def __call__(self, *args: str | Path, code: int = 0) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "pks", *map(str, args)],
            env=self.env,
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == code, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
        return done

    def json(self, *args: str | Path, code: int = 0) -> Any:
        return json.loads(self(*args, "--json", code=code).stdout)


@pytest.fixture
def pks(tmp_path: Path) -> Pks:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PKS_")}
    env["PKS_DB_URL"] = f"sqlite:///{tmp_path / 'pks.db'}"
    env["PKS_ADMIN_LISTEN"] = f"127.0.0.1:{free_tcp_port()}"  # nothing listens: database mode
    env["PKS_DS_PING_INTERVAL"] = "0"  # the example gateways do not exist
    return Pks(env, tmp_path)


def fixed_dialplan(tmp_path: Path) -> Path:
    """The seed's dialplan with its two defects corrected (match_len 0, ``^\\+33``)."""
    text = (SEED / "dialplan").read_text()
    text = text.replace("[0-9]$ 1 0 0 23", "[0-9]$ 0 0 0 23")
    text = text.replace("2 2 1 1 +33", "2 2 1 1 ^\\\\+33")
    path = tmp_path / "dialplan.fixed"
    path.write_text(text)
    return path


def test_seed_import_reports_kamailio_defects_and_writes_nothing(pks: Pks) -> None:
    done = pks("import", SEED / "address", SEED / "dialplan", SEED / "dispatcher", code=1)
    assert "import refused, nothing was written" in done.stderr
    assert "dialplan id 2: match_exp '+33[1-9][0-9]+$' does not compile" in done.stderr
    assert "dialplan id 1: match_len 1 can never match" in done.stderr
    assert "working on the database directly" in done.stderr
    export = pks("export").stdout
    lines = [line for line in export.splitlines() if line]
    assert len(lines) == 3 and all(line.startswith("id(int,auto)") for line in lines)


def test_corrected_seed_routes_as_the_seed_describes(pks: Pks, tmp_path: Path) -> None:
    done = pks("import", SEED / "address", fixed_dialplan(tmp_path), SEED / "dispatcher")
    assert "imported 2 address rows, 3 dialplan rows, 2 dispatcher rows" in done.stdout
    assert "warning: dialplan id 3: set 201 has no gateway" in done.stdout

    did = pks.json("route", "explain", "--from", "8.1.2.2:5060", "--to", "33202020201")
    assert (did["address"]["kind"], did["address"]["tag"]) == ("provider", "20")
    assert did["dialplan"][0]["rule"]["id"] == 1 and did["setid"] == 23
    assert [g["uri"] for g in did["gateways"]] == ["sip:1.1.1.1:5060"]

    out = pks("route", "explain", "--from", "10.1.1.1", "--to", "+33612345678").stdout
    assert "grp 1 (customer), tag 456" in out
    assert "dpid 1:   no rule matches" in out and "dpid 2:   rule 2" in out
    assert "RURI_HOST" in out  # what the R-URI host becomes at that gateway
    assert "sip:8.1.1.1:5060  udp        ipbx    keep" in out

    exported = pks("export", "--table", "dialplan").stdout
    assert exported.splitlines()[2].split("\t")[4] == "^\\\\+33[1-9][0-9]+$"


def test_customer_provisioning_on_the_database(pks: Pks) -> None:
    added = pks.json("customer", "add", "acme", "--source", "192.0.2.0/28:5060",
                     "--gateway", "sip:192.0.2.1", "--gateway", "sip:192.0.2.2",
                     "--did", "33140000000-199", "--did", "33150000000")  # fmt: skip
    assert added["applied"] is False and added["data"]["setid"] == 1
    refused = pks("customer", "add", "bad", "--source", "192.0.2.300",
                  "--gateway", "sip:x y", "--did", "abc", code=1)  # fmt: skip
    assert "192.0.2.300" in refused.stderr and "'abc' is not a number spec" in refused.stderr
    show = pks("customer", "show", "acme").stdout
    assert "^33140000[0-1][0-9]{2}$" in show
    rows = pks("address", "list").stdout.splitlines()
    assert rows[0].split() == ["ID", "GRP", "IP_ADDR", "MASK", "PORT", "TAG", "OWNER"]
    assert rows[1].split() == ["1", "1", "192.0.2.0", "28", "5060", "acme", "acme"]
    pks("customer", "rm", "acme")
    assert pks.json("customer", "list") == []


def test_set_ruri_host_on_the_database(pks: Pks, tmp_path: Path) -> None:
    pks("import", SEED / "address", fixed_dialplan(tmp_path), SEED / "dispatcher")
    done = pks("dispatcher", "set-ruri", "21", "gateway")
    assert "set 21 R-URI host: gateway (written to the database only)" in done.stdout
    sets = {s["setid"]: s for s in pks.json("dispatcher", "sets")}
    assert (sets[21]["algorithm"], sets[21]["ruri_host"]) == (None, "gateway")
    assert sets[23]["ruri_host"] == "keep"
    listed = pks("dispatcher", "sets").stdout.splitlines()
    assert listed[0].split() == ["SETID", "ALGORITHM", "RURI_HOST", "GATEWAYS", "OWNER"]
    refused = pks("dispatcher", "set-ruri", "21", "domain", code=1)
    assert "ruri_host 'domain' is not one of: keep" in refused.stderr
    pks("dispatcher", "set-ruri", "21", "keep")  # every default again: no override left
    assert {s["setid"]: s["ruri_host"] for s in pks.json("dispatcher", "sets")}[21] == "keep"
    added = pks.json("provider", "add", "uk", "--gateway", "sip:gw.example.net;transport=tcp",
                     "--route", "+44*", "--ruri-host", "gateway")  # fmt: skip
    assert added["data"]["ruri_host"] == "gateway"
    assert "R-URI host gateway" in pks("provider", "show", "uk").stdout


@pytest.fixture
def proxy(pks: Pks, tmp_path: Path) -> Iterator[Pks]:
    """A real ``pks run`` on loopback with the corrected seed tables; pks talks to its API."""
    pks("import", SEED / "address", fixed_dialplan(tmp_path), SEED / "dispatcher")
    pks.env["PKS_LISTEN"] = f"udp:127.0.0.61:{free_port('127.0.0.61')};name=ipbx"
    log = tmp_path / "proxy.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pks", "run"], env=pks.env, cwd=tmp_path, stderr=sink
        )
    try:
        for _ in range(300):
            if b"pks: ready" in log.read_bytes() or proc.poll() is not None:
                break
            time.sleep(0.05)
        assert b"pks: ready" in log.read_bytes(), log.read_text()
        yield pks
    finally:
        proc.terminate()
        proc.wait(10)


def test_live_operations_through_the_api(proxy: Pks) -> None:
    assert "routing: loaded" in proxy("status").stdout

    added = proxy("provider", "add", "uk", "--source", "203.0.113.5", "--gateway",
                  "sip:203.0.113.5", "--route", "+44*", "--socket", "ipbx")  # fmt: skip
    assert "using the running proxy's admin API" in added.stderr
    assert "provider uk added, set 202 (live now)" in added.stdout
    route = proxy.json("route", "explain", "--from", "10.1.1.1:5060", "--to", "+447700900123")
    assert route["setid"] == 202 and route["gateways"][0]["state"] == "active"

    said = proxy("dispatcher", "set-state", "d", "23", "sip:1.1.1.1:5060").stdout
    assert said.strip() == "Ok. Dispatcher state updated."
    state = proxy("dispatcher", "state").stdout
    assert any(
        line.split()[:4] == ["23", "round-robin", "sip:1.1.1.1:5060", "DX"]
        for line in state.splitlines()
    )
    assert "set 21 uses priority (live now)" in proxy("dispatcher", "set-alg", "21", "8").stdout
    proxy("route", "explain", "--from", "8.1.2.2:5060", "--to", "33202020201", code=3)

    refused = proxy("dialplan", "add", "--dpid", "2", "--match", "+33", "--attrs", "21", code=1)
    assert "does not compile" in refused.stderr
    assert "reloaded:" in proxy("reload").stdout
    proxy("provider", "rm", "uk")
    proxy("--db", "address", "list")  # forcing the database works while the proxy runs
