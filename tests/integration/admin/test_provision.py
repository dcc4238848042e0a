"""The provisioning layer on its own: DID ranges against a brute force, dbtext round trips,
and the same writes on SQLite, PostgreSQL and MariaDB (each in a private database)."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from pks.db.engine import make_engine
from pks.provision import Invalid, peers, tables
from pks.provision.dbtext import dump_table, parse_table
from pks.provision.numbers import parse_number, range_alternatives
from pks.provision.transfer import export_tables, import_tables

from .conftest import FIXED_DIALPLAN, SEED_ADDRESS, SEED_DISPATCHER

RANGES = [("0", "9"), ("05", "93"), ("120", "987"), ("0000", "0999"), ("1234", "9876"), ("1", "1")]


@pytest.mark.parametrize(("low", "high"), RANGES)
def test_ranges_match_exactly_their_numbers(low: str, high: str) -> None:
    regex = re.compile("^(?:" + "|".join(range_alternatives(low, high)) + ")$")
    size = len(low)
    for n in range(10**size):
        number = str(n).zfill(size)
        assert bool(regex.match(number)) == (low <= number <= high), number


def test_number_specs() -> None:
    assert [r.match_exp for r in parse_number("33202020200-209")] == ["^3320202020[0-9]$"]
    assert [(r.match_op, r.match_exp) for r in parse_number("+33*")] == [(1, "^\\+33")]
    assert [(r.match_op, r.pr) for r in parse_number("33612345678")] == [(0, 10)]
    long = parse_number("33123456789-33198765432")
    assert len(long) > 1 and all(len(r.match_exp) <= 64 for r in long)
    for bad in ("33-1", "abc", "re:+33", "209-200"):
        with pytest.raises(ValueError):
            parse_number(bad)


def test_dbtext_round_trip_in_both_formats() -> None:
    parsed = parse_table(FIXED_DIALPLAN)
    assert parsed.problems == () and parsed.rows[1].match_exp == "^\\+33[1-9][0-9]+$"
    for colon in (False, True):
        again = parse_table(dump_table("dialplan", parsed.rows, colon=colon))
        assert again.rows == parsed.rows
    kamailio = "id(int,auto) grp(int) ip_addr(string) mask(int) port(int) tag(string,null)\n"
    rows = parse_table(kamailio + "1:1:10.1.1.1:32:5060:\n2:2:8.1.2.2:32:0:x\\:y\n").rows
    assert [(r.ip_addr, r.tag) for r in rows] == [("10.1.1.1", None), ("8.1.2.2", "x:y")]
    bad = parse_table(kamailio + "1 one 10.1.1.1 32 5060 a\n1 1 10.1.1.2 32 5060 b\n")
    assert bad.problems == ("address id 1 (line 2): grp is 'one', not an integer",)


def _server_engine(url: str) -> Iterator[Engine]:
    name = f"pks_t_{secrets.token_hex(4)}"
    try:
        admin = create_engine(url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {name}"))
    except Exception as exc:  # the shared server is not there: skip
        pytest.skip(f"{url}: {exc}")
    engine = make_engine(url.rsplit("/", 1)[0] + f"/{name}")
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE {name}"))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        yield make_engine(f"sqlite:///{tmp_path / 'pks.db'}")
    elif request.param == "postgresql":
        yield from _server_engine("postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    else:
        yield from _server_engine("mariadb+pymysql://root@127.0.0.1:3306/mysql")


def test_import_then_provision_on_each_database(engine: Engine) -> None:
    files = {"a": SEED_ADDRESS, "d": FIXED_DIALPLAN, "g": SEED_DISPATCHER}
    assert import_tables(engine, files)["tables"] == {"address": 2, "dialplan": 3, "dispatcher": 2}
    acme = peers.create_peer(
        engine,
        "customer",
        {
            "name": "acme",
            "sources": ["192.0.2.1"],
            "gateways": ["sip:192.0.2.1"],
            "dids": ["33140000000-199"],
        },
    )
    assert [s["id"] for s in acme["sources"]] == [3] and acme["setid"] == 202
    row = tables.create_row(engine, "address", {"grp": 2, "ip_addr": "203.0.113.9"})
    assert row["id"] == 4  # after the imported ids and the customer's
    with pytest.raises(Invalid):
        tables.create_row(engine, "dialplan", {"dpid": 2, "match_exp": "+1", "attrs": "21"})
    assert len(tables.list_rows(engine, "dialplan")) == 4
    peers.delete_peer(engine, "customer", "acme")
    exported = export_tables(engine, ["address"])["address"]
    assert [line.split("\t")[0] for line in exported.splitlines()[1:]] == ["1", "2", "4"]
