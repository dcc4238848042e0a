"""route(): the authorize → look up → dispatch pipeline on the seed's tables."""

from __future__ import annotations

from pks.net import Proto
from pks.route import (
    AddressRow,
    DialplanRow,
    DispatcherRow,
    Drop,
    Forward,
    Peer,
    Reply,
    Target,
    route,
)

PROVIDER = ("8.1.2.2", 5060)  # address id 2, grp 2, tag 20
CUSTOMER = ("10.1.1.1", 5060)  # address id 1, grp 1, tag 456
CUSTOMER_SET = Target("sip:1.1.1.1:5060", "1.1.1.1", 5060, Proto.UDP, None, 23, "prov=ovh")
PROVIDER_SET = Target(
    "sip:8.1.1.1:5060", "8.1.1.1", 5060, Proto.UDP, "ipbx", 21, "socketname=ipbx;cust=celea"
)


def test_provider_did_goes_to_the_customer_set(seed) -> None:
    assert route(seed, *PROVIDER, "33202020201") == Forward(
        Peer(2, "20"), dpid=1, rule_id=1, setid=23, targets=(CUSTOMER_SET,)
    )


def test_customer_off_net_number_goes_to_the_provider_set(seed) -> None:
    assert route(seed, *CUSTOMER, "+33612345678") == Forward(
        Peer(1, "456"), dpid=2, rule_id=2, setid=21, targets=(PROVIDER_SET,)
    )


def test_customer_on_net_did_stays_on_net(seed) -> None:
    decision = route(seed, *CUSTOMER, "33202020205")
    assert isinstance(decision, Forward)
    assert (decision.dpid, decision.setid) == (1, 23)


def test_provider_dialing_a_dpid_2_only_number_gets_404(seed) -> None:
    assert route(seed, *PROVIDER, "+33612345678") == Reply(
        404, "Not Found", "no rule for +33612345678 in dpid 1"
    )


def test_customer_number_without_rule_gets_404_naming_both_dpids(seed) -> None:
    assert route(seed, *CUSTOMER, "0612345678") == Reply(
        404, "Not Found", "no rule for 0612345678 in dpid 1 then 2"
    )


def test_unknown_source_is_dropped(seed) -> None:
    assert route(seed, "10.0.0.9", 5060, "33202020201") == Drop("unknown source 10.0.0.9:5060")
    assert route(seed, "10.1.1.1", 5070, "33202020201") == Drop("unknown source 10.1.1.1:5070")
    assert route(seed, "::1", 5060, "1") == Drop("unknown source [::1]:5060")


def test_missing_user_part_gets_484(seed) -> None:
    for user in (None, ""):
        decision = route(seed, *CUSTOMER, user)
        assert isinstance(decision, Reply)
        assert (decision.code, decision.reason) == (484, "Address Incomplete")


def test_other_groups_are_not_routable(build) -> None:
    snap = build((AddressRow(1, 3, "10.9.9.9", 32, 0, "x"),))
    assert route(snap, "10.9.9.9", 5060, "1") == Drop(
        "group 3 is not routable (source 10.9.9.9:5060)"
    )


def test_attrs_that_is_not_a_set_id_gets_404(build) -> None:
    snap = build(
        (AddressRow(1, 2, "10.0.0.1", 32, 0, None),),
        (DialplanRow(4, 1, 1, 1, "^1", 0, "", "", "cust=a"),),
    )
    assert route(snap, "10.0.0.1", 5060, "123") == Reply(
        404, "Not Found", "rule 4 attrs 'cust=a' is not a set id"
    )


def test_missing_set_gets_404_and_unusable_set_503(build) -> None:
    address = (AddressRow(1, 2, "10.0.0.1", 32, 0, None),)
    dialplan = (DialplanRow(1, 1, 1, 1, "^1", 0, "", "", "7"),)
    snap = build(address, dialplan)
    assert route(snap, "10.0.0.1", 5060, "1") == Reply(404, "Not Found", "set 7 does not exist")
    snap = build(address, dialplan, (DispatcherRow(1, 7, "sip:10.0.0.2", 4, 0, "", ""),))
    assert route(snap, "10.0.0.1", 5060, "1") == Reply(
        503, "Service Unavailable", "no usable gateway in set 7"
    )


def test_round_robin_and_failover_reach_the_decision(build) -> None:
    snap = build(
        (AddressRow(1, 1, "10.0.0.1", 32, 0, None),),
        (DialplanRow(1, 2, 1, 0, "100", 0, "", "", "5"),),
        (
            DispatcherRow(1, 5, "sip:10.0.0.7", 0, 0, "", ""),
            DispatcherRow(2, 5, "sip:10.0.0.8", 0, 0, "", ""),
        ),
    )
    first = route(snap, "10.0.0.1", 5060, "100")
    second = route(snap, "10.0.0.1", 5060, "100")
    assert isinstance(first, Forward) and isinstance(second, Forward)
    assert [t.host for t in first.targets] == ["10.0.0.8", "10.0.0.7"]
    assert [t.host for t in second.targets] == ["10.0.0.7", "10.0.0.8"]
    down = route(snap, "10.0.0.1", 5060, "100", lambda t: t.host != "10.0.0.8")
    assert isinstance(down, Forward) and [t.host for t in down.targets] == ["10.0.0.7"]
