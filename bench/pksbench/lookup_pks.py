"""Scenario 2, pks side: the routing lookup functions alone, on growing tables.

Run as ``python -m pksbench.lookup_pks --dialplan N --address M --out FILE`` (one table size
per process, so that memory readings and a time limit apply to that size only). Builds the
snapshot with ``pks.route.build_snapshot`` from the very rows the SQLite file gets
(``tables.sized_tables``), then times, per call of the hot path:

* ``customer call``: ``lookup(s, 1, n)`` (a miss: not one of our DIDs) then ``lookup(s, 2, n)``
  (a hit on a prefix rule spread uniformly over the table) — what a customer's INVITE costs,
  the same work Kamailio's ``dp_match(1) || dp_match(2)`` does;
* ``DID hit``: ``lookup(s, 1, did)`` for DIDs spread over the exact rules;
* ``miss``: a number no rule matches, in both dpids;
* ``authorize``: ``authorize(s, ip, port)`` for the caller's host (exact row), a host among the
  ``address`` rows, and an unknown host (which walks the subnets).

Each figure is the best of 5 timed loops of 0.2 s (3 of 0.05 s with ``--quick``), in µs
per call. Build time and the RSS
growth the snapshot brings (rows freed) are reported too.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pks.route import (
    AddressRow,
    DialplanRow,
    DispatcherRow,
    Snapshot,
    TableRows,
    authorize,
    build_snapshot,
    lookup,
)
from pksbench import tables
from pksbench.procs import memory


def _rss_mib() -> float:
    return memory([os.getpid()]).rss_mib


@dataclass(frozen=True, slots=True)
class Timer:
    """Best of ``repeats`` loops of at least ``seconds`` each, in µs per call."""

    seconds: float = 0.2
    repeats: int = 5

    def __call__(self, fn: Callable[[], int]) -> float:
        """``fn`` runs one batch of calls and returns how many it made."""
        return _per_call_us(fn, self.seconds, self.repeats)


def _per_call_us(fn: Callable[[], int], min_seconds: float, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        done, t0 = 0, time.perf_counter()
        while True:
            done += fn()
            elapsed = time.perf_counter() - t0
            if elapsed >= min_seconds or done >= 2_000_000:
                break
        best = min(best, elapsed / done * 1e6)
    return best


def table_rows(t: tables.Tables) -> TableRows:
    """The benchmark's rows (plain tuples) as ``pks.route.rows`` values."""
    return TableRows(
        address=tuple(AddressRow(*r) for r in t.address),
        dialplan=tuple(DialplanRow(*r) for r in t.dialplan),
        dispatcher=tuple(DispatcherRow(*r) for r in t.dispatcher),
    )


def _wrong(snap: Snapshot, numbers: list[str], dids: list[str]) -> list[str]:
    """The lookups must give the answers the tables were built for."""
    wrong: list[str] = []
    for n in numbers[:50]:
        first, second = lookup(snap, 1, n), lookup(snap, 2, n)
        if first is not None or second is None or second.set_id != tables.CARRIER_SET:
            wrong.append(f"customer call {n}: dpid1={first} dpid2={second}")
            break
    for d in dids[:50]:
        hit = lookup(snap, 1, d)
        if hit is None or hit.set_id != tables.CUSTOMER_SET:
            wrong.append(f"DID {d}: {hit}")
            break
    if authorize(snap, tables.UAC_IP, 5060) is None:
        wrong.append("authorize: the caller's host is not found")
    return wrong


def _lookup_timings(
    timer: Timer, snap: Snapshot, numbers: list[str], dids: list[str]
) -> dict[str, object]:
    miss = "+99912345678"

    def customer() -> int:
        for n in numbers:
            if lookup(snap, 1, n) is None:
                lookup(snap, 2, n)
        return len(numbers)

    def did_hit() -> int:
        for d in dids:
            lookup(snap, 1, d)
        return len(dids)

    def no_rule() -> int:
        for _ in range(100):
            lookup(snap, 1, miss)
            lookup(snap, 2, miss)
        return 200

    return {
        "customer_call_us": timer(customer),
        "did_hit_us": timer(did_hit) if dids else None,
        "miss_us": timer(no_rule),
    }


def _authorize_timings(timer: Timer, snap: Snapshot, sample: list[str]) -> dict[str, object]:
    def caller() -> int:
        for _ in range(1000):
            authorize(snap, tables.UAC_IP, 5060)
        return 1000

    def host() -> int:
        for ip in sample:
            authorize(snap, ip, 5060)
        return len(sample)

    def unknown() -> int:
        for _ in range(1000):
            authorize(snap, "192.0.2.1", 5060)
        return 1000

    return {
        "authorize_caller_us": timer(caller),
        "authorize_host_us": timer(host) if sample else None,
        "authorize_unknown_us": timer(unknown),
    }


def run(dialplan: int, address: int, timer: Timer) -> dict[str, object]:
    size = tables.Sized(dialplan, address)
    rows = table_rows(tables.sized_tables(size))
    gc.collect()
    rss_before = _rss_mib()
    t0 = time.perf_counter()
    snap = build_snapshot(rows, now=0.0)
    build_s = time.perf_counter() - t0
    del rows
    gc.collect()
    rss_after = _rss_mib()

    rng = random.Random(4475)
    numbers = tables.called_numbers(size, 1000)
    dids = [tables.did(rng.randrange(size.exact)) for _ in range(1000)] if size.exact else []
    sample = [tables.host(rng.randrange(size.hosts)) for _ in range(1000)] if size.hosts else []
    return {
        "dialplan": dialplan,
        "address": address,
        "build_seconds": build_s,
        "snapshot_rss_mib": rss_after - rss_before,
        "rss_mib": rss_after,
        **_lookup_timings(timer, snap, numbers, dids),
        **_authorize_timings(timer, snap, sample),
        "wrong": _wrong(snap, numbers, dids),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dialplan", type=int, required=True)
    parser.add_argument("--address", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--quick", action="store_true", help="shorter timing loops")
    args = parser.parse_args()
    timer = Timer(0.05, 3) if args.quick else Timer()
    args.out.write_text(json.dumps(run(args.dialplan, args.address, timer), indent=2))


if __name__ == "__main__":
    main()
