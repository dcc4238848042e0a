"""``pks cdr tail`` and ``pks cdr export`` on the file sink's file, no proxy running: filters,
CSV and JSON lines, the exit status of a bad option or of no readable sink."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

from servers import free_tcp_port


def run(env: dict[str, str], *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "pks", "cdr", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == code, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


def record(n: int, **values: object) -> dict[str, object]:
    base: dict[str, object] = {
        "id": f"id-{n}",
        "call_id": f"call-{n}",
        "status": "answered",
        "start": f"2027-02-01T10:00:0{n}.000Z",
        "answer": f"2027-02-01T10:00:0{n}.500Z",
        "end": f"2027-02-01T10:01:0{n}.500Z",
        "duration": 60.0,
        "setup": 0.5,
        "caller": "0140000000",
        "called": f"336000000{n}",
        "peer": "acme",
        "source": "192.0.2.10:5060",
        "setid": 21,
        "gateway": "sip:192.0.2.20",
        "attempts": [{"gateway": "sip:192.0.2.20", "code": 200, "at": "2027-02-01T10:00:00Z"}],
        "code": 200,
        "reason": "OK",
        "ended_by": "caller",
        "from_tag": "a",
        "to_tag": "b",
        "worker": None,
    }
    base.update(values)
    return base


def test_tail_and_export_read_the_file_sink(tmp_path: Path) -> None:
    cdr = tmp_path / "cdr.jsonl"
    rows = [record(1), record(2, status="failed", code=503, peer="other", called="4412"), record(3)]
    cdr.write_text("".join(json.dumps(r) + "\n" for r in rows))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PKS_")}
    env.update(
        PKS_CDR_SINKS="file",
        PKS_CDR_FILE=str(cdr),
        PKS_DB_URL=f"sqlite:///{tmp_path}/x",
        PKS_ADMIN_LISTEN=f"127.0.0.1:{free_tcp_port()}",
    )

    tail = run(env, "tail", "-n", "2").stdout.splitlines()
    assert len(tail) == 2 and tail[0].endswith("Call-ID call-2")  # one line each, for people
    assert tail[0].startswith("2027-02-01T10:00:02.000Z  failed") and "503" in tail[0]
    only = run(env, "tail", "--peer", "acme", "--json").stdout.splitlines()
    assert [json.loads(x)["call_id"] for x in only] == ["call-1", "call-3"]

    exported = run(env, "export", "--since", "2027-02-01T10:00:02Z", "--format", "csv").stdout
    table = list(csv.DictReader(io.StringIO(exported)))
    assert [r["call_id"] for r in table] == ["call-2", "call-3"]
    assert table[1]["attempts"] == "sip:192.0.2.20 200" and table[0]["code"] == "503"
    lines = run(env, "export", "--since", "2027-02-01", "--number", "44").stdout.splitlines()
    assert [json.loads(x)["call_id"] for x in lines] == ["call-2"]

    run(env, "export", "--since", "yesterday", code=2)
    run({**env, "PKS_CDR_SINKS": "webhook", "PKS_CDR_WEBHOOK_URL": "http://x"}, "tail", code=2)
