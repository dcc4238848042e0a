"""Reloads in the middle of a SIPp load: no call in flight is lost, and the next calls follow
the new rules.

A customer's IP-PBX places concurrent calls to +33 numbers, each ringing 300 ms and held
1 s. While they run, the routing snapshot is rebuilt three ways, from inside the private
network (the admin API listens on its loopback): a JSON-RPC ``dispatcher.reload``, the CLI's
``pks reload``, and a REST write through the CLI (``pks dialplan add``) that sends +33 to
another carrier. Every call must succeed, and calls placed after the write must reach the
new carrier.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from .harness import Endpoint, Stage, customer, gateway, in_background, regex_rule

pytestmark = pytest.mark.e2e

NUMBER = "+33612345678"
LATER = "+33612345679"  # the number of the calls placed after the write
OLD_SET, NEW_SET = 21, 22
RPC = (
    "import httpx, sys; r = httpx.post(sys.argv[1] + '/RPC', json={'jsonrpc': '2.0', 'id': 1,"
    " 'method': 'dispatcher.reload'}, timeout=30).json(); print(r); sys.exit('error' in r)"
)


def in_netns(stage: Stage, env: dict[str, str], *argv: str) -> str:
    """Run a command inside the test network (where the admin API is); its stdout."""
    proc = stage.netns.popen(list(argv), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, f"{argv}: exit {proc.returncode}\n{out!r}\n{err!r}"
    return out.decode()


def test_reloads_under_load_lose_no_call(stage: Stage) -> None:
    caller, old_trunk, new_trunk = stage.endpoint(), stage.endpoint(), stage.endpoint()
    admin = Endpoint("127.0.0.1", stage.ports.take())
    old = stage.uas("uas_answer.xml", old_trunk, pause_ms=300)
    new = stage.uas("uas_answer.xml", new_trunk, pause_ms=300)
    proxy = stage.start_proxy(
        address=[customer(caller)],
        dialplan=[regex_rule(2, r"^\+33", OLD_SET), regex_rule(2, r"^\+49", NEW_SET)],
        dispatcher=[gateway(OLD_SET, old_trunk), gateway(NEW_SET, new_trunk)],
        env={"PKS_ADMIN_LISTEN": str(admin), "PKS_LOG_LEVEL": "INFO"},
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PKS_")}
    env |= {"PKS_ADMIN_LISTEN": str(admin), "PKS_DB_URL": f"sqlite:///{proxy.db_path}"}

    load, results = in_background(
        lambda: stage.uac(
            "uac_call.xml",
            caller,
            proxy.at(),
            service=NUMBER,
            calls=40,
            rate=20,
            limit=20,
            pause_ms=1000,
            timeout=30,
        )
    )
    time.sleep(0.8)  # calls are ringing or held: reload under them
    in_netns(stage, env, sys.executable, "-c", RPC, f"http://{admin}")
    assert "reloaded:" in in_netns(stage, env, sys.executable, "-m", "pks", "reload")
    written = in_netns(stage, env, sys.executable, "-m", "pks", "dialplan", "add", "--dpid",
                       "2", "--pr", "0", "--match", "^\\+33", "--attrs", str(NEW_SET))  # fmt: skip
    assert "live now" in written
    load.join(60)
    assert not load.is_alive() and results[0].counts == (40, 0), results[0]

    after = stage.uac("uac_call.xml", caller, proxy.at(), service=LATER, calls=3, rate=10, limit=3)
    assert after.counts == (3, 0), after
    served_old, served_new = old.stop(), new.stop()
    assert served_old.failed == 0 and served_new.failed == 0
    assert served_old.successful + served_new.successful == 43
    later = [
        m for m in served_new.requests("INVITE") if m.start_line.startswith(f"INVITE sip:{LATER}@")
    ]
    assert len(later) == 3  # the calls placed after the write follow the new rule
    assert not any(LATER in m.start_line for m in served_old.requests("INVITE"))
    assert proxy.log().count("reloaded:") >= 3
