"""Fixtures for the routing tests: a snapshot builder and the seed's example tables.

Helpers are handed out as fixtures (``build``, ``seed_rows``, ``seed``) so test modules never
import this file.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pks.route.rows import AddressRow, DialplanRow, DispatcherRow, TableRows
from pks.route.snapshot import Snapshot, build_snapshot


def _build(
    address: tuple[AddressRow, ...] = (),
    dialplan: tuple[DialplanRow, ...] = (),
    dispatcher: tuple[DispatcherRow, ...] = (),
    **kwargs: object,
) -> Snapshot:
    """A snapshot from rows."""
    return build_snapshot(
        TableRows(address, dialplan, dispatcher),
        **kwargs,  # type: ignore[arg-type]
    )


# The seed's example rows (README "address", "dialplan", "dispatcher" tables), with the two
# defects fixed: dialplan id 1 had match_len 1 (never matches an 11-digit DID) and id 2 had
# the regex '+33[1-9][0-9]+$' (PCRE "nothing to repeat": Kamailio refuses to load it).
SEED_ADDRESS = (
    AddressRow(1, 1, "10.1.1.1", 32, 5060, "456"),
    AddressRow(2, 2, "8.1.2.2", 32, 5060, "20"),
)
SEED_DIALPLAN = (
    DialplanRow(1, 1, 1, 1, r"^3320202020[0-9]$", 0, "0", "0", "23"),
    DialplanRow(2, 2, 1, 1, r"^\+33[1-9][0-9]+$", 12, "0", "0", "21"),
    DialplanRow(3, 2, 1, 1, r"^\+33[1-9][0-9]+$", 12, "1", "1", "201"),
)
SEED_DISPATCHER = (
    DispatcherRow(1, 23, "sip:1.1.1.1:5060", 0, 0, "prov=ovh", "ovh"),
    DispatcherRow(2, 21, "sip:8.1.1.1:5060", 0, 0, "socketname=ipbx;cust=celea", "celea"),
)


Builder = Callable[..., Snapshot]


@pytest.fixture
def build() -> Builder:
    """``build(address=(), dialplan=(), dispatcher=(), sockets=…, now=…)``."""
    return _build


@pytest.fixture
def seed_rows() -> TableRows:
    return TableRows(SEED_ADDRESS, SEED_DIALPLAN, SEED_DISPATCHER)


@pytest.fixture
def seed() -> Snapshot:
    return _build(SEED_ADDRESS, SEED_DIALPLAN, SEED_DISPATCHER)
