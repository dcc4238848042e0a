"""One rule must not hang the proxy: a dialplan rule whose lookup can blow up is refused when
the tables load, naming the rule, and the routing snapshot is never built with it
(docs/security.md, "Dialplan regular expressions"). The proxy-level proof — the reload fails
and the old snapshot keeps routing — is tests/integration/server/test_slow_regex.py."""

from __future__ import annotations

import pytest

from pks.route.rows import AddressRow, DialplanRow, DispatcherRow, TableRows
from pks.route.snapshot import SnapshotError, build_snapshot
from pks.route.stages import route

HOSTILE = [r"^(3+)+$", r"^(a*)*$", r"^(\d|\d\d)+$", r"(x+x+)+y", r"^(.*a){20}$"]


def rows(pattern: str) -> TableRows:
    return TableRows(
        address=(AddressRow(1, 2, "10.0.0.1", 32, 0, "carrier"),),
        dialplan=(
            DialplanRow(7, 1, 1, 1, r"^33[0-9]+$", 0, "", "", "1"),
            DialplanRow(98, 1, 2, 1, pattern, 0, "", "", "1"),
        ),
        dispatcher=(DispatcherRow(1, 1, "sip:10.0.0.2:5060", 0, 0, "", "gw"),),
    )


@pytest.mark.parametrize("pattern", HOSTILE)
def test_a_rule_that_can_blow_up_is_refused_with_its_id(pattern: str) -> None:
    with pytest.raises(SnapshotError, match=r"dialplan id 98"):
        build_snapshot(rows(pattern))


def test_the_user_part_that_would_feed_it_is_bounded() -> None:
    snapshot = build_snapshot(rows(r"^44[0-9]+$"))
    refused = route(snapshot, "10.0.0.1", 5060, "3" * 65)
    assert getattr(refused, "code", None) == 484
