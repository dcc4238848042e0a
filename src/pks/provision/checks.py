"""Beside the data path: what is wrong with a set of table rows, in plain words.

Two kinds of findings, each one line naming the table and row id:

* **errors** — what makes the router (or Kamailio) refuse the tables or a rule useless:
  everything :func:`pks.route.snapshot.build_snapshot` rejects (bad IP or mask, a regex the
  PCRE engine refuses, a URI that does not parse, an unknown socket name), plus a
  ``match_len`` that no number matching the rule can have (``match_len`` is the *whole*
  number's length, not a prefix length: the rule can never match);
* **warnings** — rows that load but route nowhere: an ``address`` group that is neither 1
  (customer) nor 2 (provider), a dialplan id the router never consults, a rule whose attrs
  is not a set id or names a set without gateways.

A write is judged by :func:`check_change`: it is refused when it adds any finding, error or
warning, that the tables did not already have. Findings already present (tables edited by
hand) never block an unrelated write, so a broken table can be repaired one row at a time.
An import is judged by :func:`check_rows`: any error refuses it, warnings are reported.
"""

from __future__ import annotations

import re
import re._parser as sre_parse  # the stdlib's own width computation for compiled patterns
from collections.abc import Collection
from dataclasses import dataclass

from pks.provision.errors import Invalid
from pks.route import DPIDS_BY_GROUP, GROUP_CUSTOMER, GROUP_PROVIDER
from pks.route.fnmatch import compile_fnmatch
from pks.route.lookup import MATCH_EQUAL, MATCH_FNMATCH, MATCH_REGEX
from pks.route.regex import PcreError, byte_view, compile_pcre
from pks.route.rows import DialplanRow, TableRows
from pks.route.snapshot import SnapshotError, build_snapshot

__all__ = ["Findings", "check_change", "check_rows"]

_ROUTED_DPIDS = frozenset(d for dpids in DPIDS_BY_GROUP.values() for d in dpids)
_SET_ID = re.compile(r"-?[0-9]+", re.ASCII)
_LEADING_PLUS = re.compile(r"match_exp '(\^?)\+")


@dataclass(frozen=True, slots=True)
class Findings:
    """Errors and warnings about a set of rows, one plain-words line each."""

    errors: tuple[str, ...]
    warnings: tuple[str, ...]

    @property
    def all(self) -> tuple[str, ...]:
        return self.errors + self.warnings


def check_rows(rows: TableRows, *, sockets: Collection[str] | None = None) -> Findings:
    """Every error and warning of ``rows`` (see the module docstring)."""
    errors: list[str] = []
    try:
        build_snapshot(rows, sockets=sockets)
    except SnapshotError as exc:
        errors.extend(_hint(p) for p in exc.problems)
    errors.extend(p for row in rows.dialplan if (p := _never_matches(row)) is not None)
    return Findings(tuple(errors), tuple(_warnings(rows)))


def check_change(
    before: TableRows,
    after: TableRows,
    *,
    sockets: Collection[str] | None = None,
) -> Findings:
    """Refuse (:class:`Invalid`) a change that adds findings; return the findings left."""
    old = set(check_rows(before, sockets=sockets).all)
    new = check_rows(after, sockets=sockets)
    added = [line for line in new.all if line not in old]
    if added:
        raise Invalid("refused, nothing was written", added)
    return new


def _hint(problem: str) -> str:
    """Add the usual fix to the usual mistakes."""
    if "does not compile" in problem and _LEADING_PLUS.search(problem):
        return problem + " (a leading '+' must be escaped: write '^\\+…', not '+…')"
    return problem


def _width(pattern: re.Pattern[str]) -> tuple[int, int]:
    low, high = sre_parse.parse(pattern.pattern, pattern.flags).getwidth()
    return int(low), int(high)


def _never_matches(row: DialplanRow) -> str | None:
    """Why a rule with ``match_len`` ≠ 0 can never match, or None."""
    if row.match_len <= 0:
        return None
    where = f"dialplan id {row.id}"
    if row.match_op == MATCH_EQUAL:
        low = high = len(byte_view(row.match_exp))
    elif row.match_op == MATCH_REGEX:
        try:
            compiled = compile_pcre(row.match_exp)
        except PcreError:
            return None  # already reported by the snapshot build
        low, high = _width(compiled.pattern)
        text = compiled.pattern.pattern
        anchored = text.startswith("^") and text.endswith("$") and not text.endswith("\\$")
        if not anchored or "|" in text:
            high = 1 << 30  # unanchored search: longer inputs may contain a match
    elif row.match_op == MATCH_FNMATCH:
        low, high = _width(compile_fnmatch(row.match_exp).pattern)
    else:
        return None
    if low <= row.match_len <= high:
        return None
    size = f"{low}-character" if low == high else f"at least {low}-character"
    return (
        f"{where}: match_len {row.match_len} can never match: match_exp {row.match_exp!r}"
        f" only matches {size} numbers, and match_len is the length of the whole number"
        f" (not a prefix length); use match_len 0 (any length)"
        + (f" or {low}" if low == high else "")
    )


def _warnings(rows: TableRows) -> list[str]:
    found: list[str] = []
    for a in rows.address:
        if a.grp not in (GROUP_CUSTOMER, GROUP_PROVIDER) and a.grp > 0:
            found.append(
                f"address id {a.id}: grp {a.grp} is neither 1 (customer) nor 2 (provider):"
                " requests from this address are dropped"
            )
    sets = {d.setid for d in rows.dispatcher}
    for r in rows.dialplan:
        where = f"dialplan id {r.id}"
        if r.dpid not in _ROUTED_DPIDS:
            found.append(
                f"{where}: dpid {r.dpid} is never consulted (the router uses dpid 1 for DIDs"
                " and dpid 2 for routes to providers)"
            )
        elif not _SET_ID.fullmatch(r.attrs):
            found.append(
                f"{where}: attrs {r.attrs!r} is not a dispatcher set id: a call matching"
                " this rule is answered 404"
            )
        elif int(r.attrs) not in sets:
            found.append(
                f"{where}: set {int(r.attrs)} has no gateway (no dispatcher row with setid"
                f" {int(r.attrs)}): a call matching this rule is answered 404"
            )
    return found
