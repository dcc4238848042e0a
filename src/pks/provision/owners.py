"""Beside the data path: which customer or provider owns a row of the Kamailio tables.

Ownership is by value (see :mod:`pks.db.own`): a peer owns the ``address`` rows whose
``tag`` is its tag, the ``dispatcher`` rows whose ``setid`` is its set, and the ``dialplan``
rows of its dpid (1 for a customer's DIDs, 2 for a provider's routes) whose ``attrs`` is its
set id. A row nobody owns (edited by hand, imported) is still routed; it is shown with no
owner.
"""

from __future__ import annotations

from typing import Any

from pks.route import DPID_DID, DPID_OFFNET, GROUP_CUSTOMER, GROUP_PROVIDER
from pks.route.rows import AddressRow, DialplanRow, DispatcherRow, PeerRow, TableRows

__all__ = ["DPID_OF_KIND", "GROUP_OF_KIND", "Owners", "owned_rows"]

DPID_OF_KIND = {"customer": DPID_DID, "provider": DPID_OFFNET}
GROUP_OF_KIND = {"customer": GROUP_CUSTOMER, "provider": GROUP_PROVIDER}


class Owners:
    """Owner lookup over one read of the tables."""

    def __init__(self, rows: TableRows) -> None:
        self.by_tag = {p.tag: p for p in rows.peers}
        self.by_set = {p.setid: p for p in rows.peers}

    @staticmethod
    def _brief(peer: PeerRow | None) -> dict[str, Any] | None:
        return None if peer is None else {"kind": peer.kind, "name": peer.name}

    def of_set(self, setid: int) -> dict[str, Any] | None:
        return self._brief(self.by_set.get(setid))

    def of(self, table: str, row: Any) -> dict[str, Any] | None:
        """The owner of a row of ``table`` as ``{"kind", "name"}``, or None."""
        if isinstance(row, AddressRow):
            return self._brief(self.by_tag.get(row.tag or ""))
        if isinstance(row, DispatcherRow):
            return self.of_set(row.setid)
        if isinstance(row, DialplanRow):
            peer = self.by_set.get(int(row.attrs)) if row.attrs.isdigit() else None
            if peer is not None and DPID_OF_KIND.get(peer.kind) == row.dpid:
                return self._brief(peer)
        return None


def owned_rows(
    rows: TableRows, peer: PeerRow
) -> tuple[tuple[AddressRow, ...], tuple[DispatcherRow, ...], tuple[DialplanRow, ...]]:
    """The address, dispatcher and dialplan rows ``peer`` owns, in load order."""
    dpid = DPID_OF_KIND[peer.kind]
    return (
        tuple(a for a in rows.address if a.tag == peer.tag),
        tuple(d for d in rows.dispatcher if d.setid == peer.setid),
        tuple(r for r in rows.dialplan if r.dpid == dpid and r.attrs == str(peer.setid)),
    )
