"""Several pks instances on one PostgreSQL, and a database outage under SIPp load.

The database is a private PostgreSQL server (tests/dbs.py) reached through its Unix socket,
which works from inside the tests' network namespace and can be stopped without touching
the shared server. Each proxy is a real ``python -m pks run`` on its own address.

Propagation delays are measured from the commit of a change to the line in which the other
instance logs its reload, and printed (``-s``): the requirement is 2 s, the assertions allow
a generous 10 s so that a loaded machine does not fail them.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import threading
import time

import pytest

from dbs import PrivatePostgres, execute
from pks.db import make_engine, migrate

from .harness import Endpoint, HarnessError, ProxyProcess, SippResult, Stage

pytestmark = [pytest.mark.e2e, pytest.mark.db]

DID = "33202020201"
E164 = "+33612345678"
CUSTOMER_SET = 23
CARRIER_SET = 21
REQUIRED = 2.0  # seconds: the propagation requirement
BOUND = 10.0  # seconds: what the assertions tolerate


def new_database(server: PrivatePostgres) -> str:
    url = server.create_database(f"pks_e2e_{secrets.token_hex(4)}")
    engine = make_engine(url)
    migrate.init(engine)  # what `pks db init` does: tables and NOTIFY triggers
    engine.dispose()
    return url


def address(at: Endpoint, grp: int, tag: str) -> str:
    return (
        "INSERT INTO address (grp, ip_addr, mask, port, tag)"
        f" VALUES ({grp}, '{at.ip}', 32, {at.port}, '{tag}')"
    )


def rule(dpid: int, match_exp: str, setid: int) -> str:
    return (
        "INSERT INTO dialplan (dpid, pr, match_op, match_exp, match_len, subst_exp, repl_exp,"
        f" attrs) VALUES ({dpid}, 1, 1, '{match_exp}', 0, '', '', '{setid}')"
    )


def gateway(setid: int, at: Endpoint) -> str:
    return (
        "INSERT INTO dispatcher (setid, destination, description)"
        f" VALUES ({setid}, 'sip:{at}', 'gw {at}')"
    )


def start_proxy(stage: Stage, ip: str, url: str, name: str) -> tuple[ProxyProcess, Endpoint]:
    """``pks run`` at ``ip`` on the database ``url``; returns it and its admin address."""
    workdir = stage.workdir / name
    workdir.mkdir()
    at = Endpoint(ip, stage.ports.take())
    admin = Endpoint("127.0.0.1", stage.ports.take())
    env = {"PKS_DB_URL": url, "PKS_LOG_LEVEL": "INFO", "PKS_FR_INV_TIMER": "30"}
    proxy = ProxyProcess(stage.netns, workdir, [("udp", at)], admin, env)
    proxy.start()
    return proxy, admin


def reloads(proxy: ProxyProcess) -> int:
    return proxy.log().count("reloaded: ")


def wait_reload(proxy: ProxyProcess, after: int, committed: float) -> float:
    """Seconds from ``committed`` until ``proxy`` logs a reload beyond ``after``."""
    while reloads(proxy) <= after:
        if time.monotonic() - committed > BOUND:
            pytest.fail(f"no reload within {BOUND} s:\n{proxy.log()[-3000:]}")
        time.sleep(0.01)
    return time.monotonic() - committed


def pks_cli(stage: Stage, admin: Endpoint, *argv: str) -> None:
    """``pks ARGV…`` against the admin API at ``admin``, from inside the namespace."""
    env = {**os.environ, "PKS_ADMIN_LISTEN": str(admin)}
    done = stage.netns.popen(
        [sys.executable, "-m", "pks", *argv],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    _, err = done.communicate(timeout=30)
    assert done.returncode == 0, err


def test_a_customer_added_on_one_instance_routes_on_the_other(
    stage: Stage, private_postgres: PrivatePostgres
) -> None:
    url = new_database(private_postgres)
    trunk, first, second = stage.endpoint(), stage.endpoint(), stage.endpoint()
    carrier = stage.uas("uas_answer.xml", trunk)
    execute(url, rule(2, r"^\+33[1-9][0-9]+$", CARRIER_SET), gateway(CARRIER_SET, trunk))
    a, a_admin = start_proxy(stage, "127.0.0.2", url, "a")
    b, _ = start_proxy(stage, "127.0.0.3", url, "b")
    stage.proxy = b  # its log goes into a failure report
    try:
        # a customer added through instance A's API (pks customer add talks to it)
        before_b = reloads(b)
        committed = time.monotonic()  # before the CLI starts: an upper bound of the delay
        pks_cli(stage, a_admin, "customer", "add", "acme", "--source",
                f"{first.ip}:{first.port}", "--gateway", first.sip_uri(), "--did",
                "33299999990")  # fmt: skip
        delay_api = wait_reload(b, before_b, committed)
        calls = stage.uac("uac_call.xml", first, b.at(), service=E164)
        assert calls.counts == (1, 0), f"{calls}\n{b.log()[-3000:]}"

        # a customer added by direct SQL: both instances pick it up by themselves
        before_a, before_b = reloads(a), reloads(b)
        execute(url, address(second, 1, "globex"))
        committed = time.monotonic()
        delay_sql_b = wait_reload(b, before_b, committed)
        delay_sql_a = wait_reload(a, before_a, committed)
        for proxy in (b, a):
            calls = stage.uac("uac_call.xml", second, proxy.at(), service=E164)
            assert calls.counts == (1, 0), f"{calls}\n{proxy.log()[-3000:]}"
    finally:
        a.stop()
    served = carrier.stop()
    assert served.counts == (3, 0), served
    print(
        f"\npropagation to the other instance (requirement {REQUIRED} s):"
        f" via A's API {delay_api:.3f} s; direct SQL → B {delay_sql_b:.3f} s,"
        f" → A {delay_sql_a:.3f} s"
    )


def test_database_outage_under_load_loses_no_call(
    stage: Stage, private_postgres: PrivatePostgres
) -> None:
    url = new_database(private_postgres)
    caller, pbx = stage.endpoint(), stage.endpoint()
    callee = stage.uas("uas_answer.xml", pbx)
    execute(
        url,
        address(caller, 2, "carrier"),
        rule(1, r"^3320202020[0-9]$", CUSTOMER_SET),
        gateway(CUSTOMER_SET, pbx),
    )
    proxy, _ = start_proxy(stage, "127.0.0.2", url, "p")
    stage.proxy = proxy
    total = 150
    outcome: list[SippResult] = []
    load = threading.Thread(
        target=lambda: outcome.append(
            stage.uac(
                "uac_call.xml",
                caller,
                proxy.at(),
                service=DID,
                calls=total,
                rate=30,
                limit=40,
                pause_ms=400,
                timeout=60,
            )
        )
    )
    load.start()
    try:
        time.sleep(1.0)  # calls flowing
        private_postgres.stop()
        deadline = time.monotonic() + BOUND
        while "database unreachable (" not in proxy.log():
            if time.monotonic() > deadline:
                raise HarnessError("the proxy did not notice the outage")
            time.sleep(0.02)
        time.sleep(1.5)  # calls keep being set up and torn down during the outage
    finally:
        private_postgres.start()
        load.join(90)
    assert outcome and outcome[0].counts == (total, 0), outcome
    log = proxy.log()
    assert log.count("database unreachable (") == 1, log[-3000:]

    # once the database is back, a later change gets through without any operator action
    before = reloads(proxy)
    execute(url, rule(1, r"^3320202030[0-9]$", CUSTOMER_SET))
    committed = time.monotonic()
    delay = wait_reload(proxy, before, committed)
    calls = stage.uac("uac_call.xml", caller, proxy.at(), service="33202020301")
    assert calls.counts == (1, 0), calls
    assert "database reachable again" in proxy.log()
    served = callee.stop()
    assert served.counts[0] == total + 1, served
    print(
        f"\n{total} calls through a database outage, 0 lost; change after recovery: {delay:.3f} s"
    )
