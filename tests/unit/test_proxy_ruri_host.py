"""pks_set.ruri_host through the proxy: a ``gateway`` set's branches carry the gateway's host
(and port, transport) in their R-URI, each branch its own gateway's, and the CANCEL and ACK
of a branch repeat what that branch sent; a ``keep`` set (the default) relays the caller's."""

from __future__ import annotations

from harness import GW1, GW2, PBX, Net, answer, invite, msgs, seed_rows

from pks.net import Address
from pks.route.rows import SetRow
from pks.sip import Message

OFFNET = "33123456789"  # from the PBX (grp 1) to the carrier's set 21: GW1, GW2


def first(sends: list, dest: Address) -> Message:
    found = msgs(sends, dest)
    assert found, f"nothing sent to {dest}"
    return found[0]


def test_gateway_set_writes_each_gateways_host_in_the_ruri() -> None:
    rows = seed_rows(sets=(SetRow(21, None, "gateway"),))
    net = Net.make(rows)
    out = net.deliver(invite(OFFNET, PBX, ruri=f"sip:{OFFNET}@127.0.0.10:5060;user=phone"), PBX)
    (fwd,) = [m for m in msgs(out) if m.method == "INVITE"]
    tried = GW1 if msgs(out, GW1) else GW2
    other = GW2 if tried == GW1 else GW1
    assert fwd.ruri == f"sip:{OFFNET}@{tried.host}:{tried.port};user=phone"
    # a failure moves to the other gateway, whose R-URI names that one
    out = net.deliver(answer(fwd, 503, "Down"), tried)
    assert first(out, tried).method == "ACK" and first(out, tried).ruri == fwd.ruri
    second = first(out, other)
    assert second.ruri == f"sip:{OFFNET}@{other.host}:{other.port};user=phone"
    # the CANCEL of a branch has the R-URI of the INVITE it cancels (RFC 3261 §9.1)
    net.deliver(answer(second, 180, "Ringing"), other)
    cancel = invite(OFFNET, PBX, method="CANCEL", ruri=f"sip:{OFFNET}@127.0.0.10:5060;user=phone")
    down = first(net.deliver(cancel, PBX), other)
    assert down.method == "CANCEL" and down.ruri == second.ruri
    net.drain()


def test_keep_set_relays_the_callers_ruri() -> None:
    net = Net.make(seed_rows(sets=(SetRow(21, "priority", "keep"),)))
    ruri = f"sip:{OFFNET}@127.0.0.10:5060;user=phone"
    out = net.deliver(invite(OFFNET, PBX, ruri=ruri), PBX)
    assert first(out, GW2).ruri == ruri  # priority: the first of the set (reverse load order)
    net.drain()
