"""The proxy core's cost per call in CPU instructions, counted by valgrind: a figure that
does not move with the machine's mood.

Run as ``python -m pksbench.instructions [--calls N]`` from ``bench/`` (with
``PYTHONPATH=.accel:.`` for the compiled core). It records the messages of N calls shaped like
the SIPp scenarios once (`pksbench.core`), then replays them through a fresh `Proxy` under
``valgrind --tool=callgrind`` twice — 100 calls, then 100 + N — and reports the difference
divided by N: the instructions of one call's six received messages, without the start-up
(imports, snapshot) both runs share. Needs valgrind (Debian ``valgrind``); about 20 s per 500
calls with the compiled core.

Timings on a shared VM move by ±5 % from one minute to the next; instruction counts repeat
within 0.3 %. Use them to tell whether a change to the core saves work; the time a call takes
also depends on memory (cache misses), which instructions do not show.
"""

from __future__ import annotations

import argparse
import pickle
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from pks import heap
from pks.net import Address, Inbound
from pks.sip.memo import forget_all
from pksbench import core

BASE = 100  # calls of the shorter run: what both runs share besides the start-up
_COLLECTED = re.compile(r"Collected : (\d+)")


def record(calls: int, path: Path) -> None:
    """The received messages of ``calls`` calls, as (bytes, source host, source port)."""
    with core.same_draws():
        msgs = core._messages(core.new_proxy(), calls, 0)
    rows = [(data, inbound.source.host, inbound.source.port) for data, inbound in msgs]
    path.write_bytes(pickle.dumps(rows))


def replay(calls: int, path: Path, cdr: bool = False) -> None:
    """Feed the first ``calls`` recorded calls to a fresh proxy (what valgrind counts)."""
    rows = pickle.loads(path.read_bytes())
    per_call = len(rows) // int(path.with_suffix(".calls").read_text())
    msgs = [(d, Inbound(core.PROXY, Address(h, p))) for d, h, p in rows[: calls * per_call]]
    proxy = core.new_proxy()
    if cdr:
        proxy.calls.recorder = core.cdr_recorder()
    forget_all()
    heap.tune()  # the collector as a proxy process runs it
    heap.settle(collect=True)
    with core.same_draws():
        for data, inbound in msgs:
            proxy.receive(data, inbound, 1000.0)
    if proxy.stats["2xx"] != 2 * calls:  # the 200s to the INVITE and to the BYE relayed
        raise SystemExit(f"replay diverged: {proxy.stats}")


def _count(calls: int, path: Path, cdr: bool) -> int:
    cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
           "-m", "pksbench.instructions", "--replay", str(calls), "--file", str(path),
           *(["--cdr"] if cdr else [])]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    found = _COLLECTED.search(done.stderr)
    if found is None:
        raise SystemExit(f"no instruction count in valgrind's output:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m pksbench.instructions", description=__doc__)
    parser.add_argument("--calls", type=int, default=500, help="calls counted (500)")
    parser.add_argument("--replay", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument(
        "--cdr", action="store_true", help="call records on (as python -m pksbench.core --cdr)"
    )
    args = parser.parse_args()
    if args.replay is not None:
        replay(args.replay, args.file, args.cdr)
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is needed: apt-get install valgrind")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "messages.pickle"
        total = BASE + args.calls
        record(total, path)
        path.with_suffix(".calls").write_text(str(total))
        short, long = _count(BASE, path, args.cdr), _count(total, path, args.cdr)
    per_call = (long - short) / args.calls
    print(
        f"core: {per_call / 1000:.1f} k instructions per call (valgrind, {args.calls} calls"
        f"{', call records on' if args.cdr else ''})"
    )


if __name__ == "__main__":
    main()
