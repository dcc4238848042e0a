"""pks_set.ruri_host at snapshot build: a ``gateway`` set's targets carry the R-URI host part
precomputed from their URI (as written: a name stays a name, [v6] keeps its brackets, a port
only when the URI has one, the transport value when it names one); ``keep`` sets carry none."""

from __future__ import annotations

import pytest

from pks.route import DispatcherRow, SnapshotError, select
from pks.route.dispatch import parse_ruri_host
from pks.route.rows import SetRow, TableRows
from pks.route.snapshot import Snapshot, build_snapshot


def snapshot(*destinations: str, sets: tuple[SetRow, ...] = (), setid: int = 1) -> Snapshot:
    rows = tuple(
        DispatcherRow(i, setid, uri, 0, 0, "", "") for i, uri in enumerate(destinations, 1)
    )
    return build_snapshot(TableRows(dispatcher=rows, sets=sets))


def test_keep_is_the_default_and_carries_nothing() -> None:
    snap = snapshot("sip:192.0.2.1:5070")
    (dset,) = snap.dispatcher_sets()
    assert dset.ruri_host == "keep"
    assert [(t.ruri_host, t.ruri_transport) for t in dset.targets] == [("", "")]
    kept = snapshot("sip:192.0.2.1:5070", sets=(SetRow(1, "priority", "keep"),))
    assert kept.dispatcher_sets()[0].targets[0].ruri_host == ""


@pytest.mark.parametrize(
    ("uri", "host", "transport"),
    [
        ("sip:192.0.2.1", "192.0.2.1", ""),
        ("sip:192.0.2.1:5070", "192.0.2.1:5070", ""),
        ("192.0.2.1:5080", "192.0.2.1:5080", ""),  # Kamailio's sip: fix-up first
        ("sip:[2001:DB8::1]:5070;transport=TCP", "[2001:DB8::1]:5070", "tcp"),
        ("sip:[2001:db8::2]", "[2001:db8::2]", ""),
        ("sip:carrier.example.net;transport=tcp", "carrier.example.net", "tcp"),
        ("sip:gw@carrier.example.net:5062;transport=udp", "carrier.example.net:5062", "udp"),
    ],
)
def test_gateway_precomputes_the_host_part(uri: str, host: str, transport: str) -> None:
    snap = snapshot(uri, sets=(SetRow(1, None, "gateway"),))
    (dset,) = snap.dispatcher_sets()
    assert dset.ruri_host == "gateway"
    assert dset.algorithm == "round-robin"  # NULL algorithm: the global default
    (target,) = dset.targets
    assert (target.ruri_host, target.ruri_transport) == (host, transport)
    assert select(snap, 1) == (target,)


def test_only_the_named_set_rewrites() -> None:
    rows = TableRows(
        dispatcher=(
            DispatcherRow(1, 1, "sip:192.0.2.1", 0, 0, "", ""),
            DispatcherRow(2, 2, "sip:192.0.2.2", 0, 0, "", ""),
        ),
        sets=(SetRow(2, "priority", " Gateway "),),
    )
    sets = {s.setid: s for s in build_snapshot(rows).dispatcher_sets()}
    assert (sets[1].ruri_host, sets[1].targets[0].ruri_host) == ("keep", "")
    assert (sets[2].ruri_host, sets[2].targets[0].ruri_host) == ("gateway", "192.0.2.2")
    assert sets[2].algorithm == "priority"


def test_an_address_resolved_from_a_name_keeps_the_name_in_the_ruri() -> None:
    snap = snapshot("sip:carrier.example.net:5070", sets=(SetRow(1, None, "gateway"),))
    target = snap.dispatcher_sets()[0].targets[0]
    resolved = target.at("192.0.2.9", 5070)
    assert (resolved.host, resolved.port, resolved.dns) == ("192.0.2.9", 5070, "")
    assert (resolved.ruri_host, resolved.ruri_transport) == ("carrier.example.net:5070", "")
    keep = snapshot("sip:carrier.example.net").dispatcher_sets()[0].targets[0]
    assert keep.at("192.0.2.9", 5060).ruri_host == ""


def test_a_bad_value_fails_the_build_naming_the_set() -> None:
    with pytest.raises(SnapshotError) as caught:
        snapshot("sip:192.0.2.1", sets=(SetRow(1, None, "domain"),))
    assert "pks_set setid 1: ruri_host 'domain' is not one of: keep" in str(caught.value)


def test_parse_ruri_host() -> None:
    assert parse_ruri_host("keep") == "keep"
    assert parse_ruri_host(" GATEWAY") == "gateway"
    with pytest.raises(ValueError, match="ds_select_domain"):
        parse_ruri_host("")
