"""Beside the data path: customers and providers as whole objects over the Kamailio tables.

What an operator gives when creating one (the seed left it open):

* ``name`` (unique) and optionally ``tag`` (the ``address.tag`` identifying its gateways;
  default: the name), ``setid`` (its dispatcher set; default: the next free set id),
  ``socket`` (the listening socket to reach its gateways, written ``sockname=`` in the
  dispatcher attrs), ``algorithm`` (the set's distribution algorithm), ``ruri_host``
  (``keep`` the caller's R-URI host, the default, or write the ``gateway``'s: what a carrier
  or a user agent with accounts usually wants), ``max_calls`` and a ``description``;
* ``sources``: the addresses it sends from, ``IP``, ``IP/MASK``, ``IP:PORT`` or
  ``IP/MASK:PORT`` (``[v6]/MASK:PORT``); port 0 or none = any port;
* ``gateways``: the SIP URIs calls to it are sent to (or ``{uri, priority, flags, attrs}``);
* ``numbers``: a customer's DIDs (dialplan 1) or a provider's routes (dialplan 2), in the
  syntax of :mod:`pks.provision.numbers` (or ``{match, pr}``).

Creating one writes, in one transaction, a ``pks_peer`` row, ``address`` rows (grp 1 for a
customer, 2 for a provider, tag = its tag), ``dispatcher`` rows (setid = its set) and
``dialplan`` rules (attrs = its set id), after the same checks as any table write. Deleting
one removes every row it owns (:mod:`pks.provision.owners`) and nothing else.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert

from pks.db import schema
from pks.db.own import pks_peer, pks_set
from pks.provision.errors import Conflict, Invalid, NotFound
from pks.provision.numbers import parse_number
from pks.provision.owners import DPID_OF_KIND, GROUP_OF_KIND, owned_rows
from pks.provision.store import read_all, sync_sequence
from pks.provision.tables import require_column, require_ruri_host_column, write
from pks.route.algorithms import parse_algorithm
from pks.route.dispatch import parse_ruri_host
from pks.route.rows import AddressRow, DialplanRow, DispatcherRow, PeerRow, SetRow, TableRows

__all__ = ["KINDS", "create_peer", "delete_peer", "get_peer", "list_peers", "parse_source"]

KINDS = ("customer", "provider")
_LATER_COLUMNS = ("max_cps", "max_intl_calls")  # pks_peer columns of revision 0003
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
_SOURCE = re.compile(
    r"(?P<ip>\[[^\]]+\]|[^/:\[\]]+|[0-9A-Fa-f:.]+)(?:/(?P<mask>[0-9]+))?"
    r"(?::(?P<port>[0-9]+))?"
)


def parse_source(spec: str | Mapping[str, Any]) -> tuple[str, int, int]:
    """``IP[/MASK][:PORT]`` (or ``{ip, mask, port}``) → (ip, mask, port); ValueError."""
    if isinstance(spec, Mapping):
        ip, mask, port = str(spec.get("ip", "")), spec.get("mask"), spec.get("port", 0)
    else:
        text = spec.strip()
        if text.count(":") > 1 and not text.startswith("["):  # bare IPv6, no port
            ip, _, mask_text = text.partition("/")
            mask, port = (int(mask_text) if mask_text.isdigit() else None), 0
        else:
            found = _SOURCE.fullmatch(text)
            if found is None:
                raise ValueError(f"source {spec!r}: write IP, IP/MASK, IP:PORT or IP/MASK:PORT")
            ip, mask = found["ip"], int(found["mask"]) if found["mask"] else None
            port = int(found["port"] or 0)
    try:
        parsed = ipaddress.ip_address(ip.strip("[]"))
    except ValueError:
        raise ValueError(f"source {spec!r}: {ip!r} is not an IP address") from None
    bits = parsed.max_prefixlen
    mask = bits if mask is None else mask
    if not isinstance(mask, int) or not 1 <= mask <= bits:
        raise ValueError(f"source {spec!r}: mask {mask} is not in 1..{bits}")
    if not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"source {spec!r}: port {port} is not in 0..65535")
    return str(parsed), mask, port


# -- reading ------------------------------------------------------------------------------


def list_peers(engine: Engine, kind: str | None = None) -> list[dict[str, Any]]:
    """Every customer and/or provider, whole (sources, gateways, numbers)."""
    rows = read_all(engine)
    return [_view(rows, p) for p in rows.peers if kind is None or p.kind == kind]


def get_peer(engine: Engine, kind: str, name: str) -> dict[str, Any]:
    rows = read_all(engine)
    return _view(rows, _find(rows, kind, name))


# -- writing ------------------------------------------------------------------------------


def create_peer(
    engine: Engine, kind: str, spec: Mapping[str, Any], **checks: Any
) -> dict[str, Any]:
    """Write a customer or provider and all its rows in one transaction."""
    _kind(kind)
    problems: list[str] = []
    clean = _clean_spec(spec, problems)
    if problems:
        raise Invalid(f"refused, nothing was written ({kind} {spec.get('name')!r})", problems)

    def change(rows: TableRows) -> tuple[TableRows, Callable[[Connection], Any]]:
        peer = _new_peer(rows, kind, clean)
        after = _add_rows(rows, peer, clean)

        def writer(conn: Connection) -> dict[str, Any]:
            _insert_new(conn, rows, after)
            return _view(after, peer)

        return after, writer

    result: dict[str, Any] = write(engine, change, **checks)
    return result


def delete_peer(engine: Engine, kind: str, name: str, **checks: Any) -> dict[str, Any]:
    """Remove a customer or provider and every row it owns; returns what was removed."""

    def change(rows: TableRows) -> tuple[TableRows, Callable[[Connection], Any]]:
        peer = _find(rows, kind, name)
        view = _view(rows, peer)
        addresses, gateways, rules = owned_rows(rows, peer)
        gone = {id(r) for r in (*addresses, *gateways, *rules)}
        after = TableRows(
            address=tuple(r for r in rows.address if id(r) not in gone),
            dialplan=tuple(r for r in rows.dialplan if id(r) not in gone),
            dispatcher=tuple(r for r in rows.dispatcher if id(r) not in gone),
            peers=tuple(p for p in rows.peers if p.id != peer.id),
            sets=tuple(s for s in rows.sets if s.setid != peer.setid),
        )

        def writer(conn: Connection) -> dict[str, Any]:
            for table, owned in (
                (schema.address, addresses),
                (schema.dispatcher, gateways),
                (schema.dialplan, rules),
            ):
                if owned:
                    conn.execute(delete(table).where(table.c.id.in_([r.id for r in owned])))
            conn.execute(delete(pks_set).where(pks_set.c.setid == peer.setid))
            conn.execute(delete(pks_peer).where(pks_peer.c.id == peer.id))
            return view

        return after, writer

    result: dict[str, Any] = write(engine, change, **checks)
    return result


# -- helpers ------------------------------------------------------------------------------


def _kind(kind: str) -> str:
    if kind not in KINDS:
        raise NotFound(f"unknown kind {kind!r} (customer or provider)")
    return kind


def _find(rows: TableRows, kind: str, name: str) -> PeerRow:
    for peer in rows.peers:
        if peer.kind == _kind(kind) and peer.name == name:
            return peer
    raise NotFound(f"no {kind} named {name!r}")


def _clean_spec(spec: Mapping[str, Any], problems: list[str]) -> dict[str, Any]:
    """Parse and type-check everything that does not need the tables."""
    name = spec.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        problems.append(
            f"name {name!r}: 1-64 letters, digits and _.@- (starting with one letter or digit)"
        )
    tag = spec.get("tag") or name
    if not isinstance(tag, str) or not 0 < len(tag) <= 64:
        problems.append(f"tag {tag!r}: 1-64 characters")
    setid = spec.get("setid")
    if setid is not None and (not isinstance(setid, int) or isinstance(setid, bool) or setid < 1):
        problems.append(f"setid {setid!r} is not a positive integer")
    socket = spec.get("socket") or None
    if socket is not None and (
        not isinstance(socket, str) or not re.fullmatch(r"[\w.:\[\]-]+", socket)
    ):
        problems.append(f"socket {socket!r} is not a socket name")
    algorithm, ruri_host = _set_options(spec, problems)
    limits = {}
    for key in ("max_calls", "max_cps", "max_intl_calls"):
        limits[key] = value = spec.get(key)
        if value is not None and (not isinstance(value, int) or value < 0):
            problems.append(f"{key} {value!r} is not a number >= 0")
    sources = []
    for item in _items(spec, "sources"):
        try:
            sources.append(parse_source(item))
        except ValueError as exc:
            problems.append(str(exc))
    gateways = [_gateway(item, socket, problems) for item in _items(spec, "gateways")]
    numbers = []
    for item in _items(spec, "numbers") or _items(spec, "dids") or _items(spec, "routes"):
        match, pr = (
            (item.get("match"), item.get("pr")) if isinstance(item, Mapping) else (item, None)
        )
        try:
            numbers.extend(parse_number(str(match), pr))
        except ValueError as exc:
            problems.append(str(exc))
    return {
        "name": name,
        "tag": tag,
        "setid": setid,
        "socket": socket,
        "algorithm": algorithm,
        "ruri_host": ruri_host,
        **limits,
        "description": str(spec.get("description") or ""),
        "sources": sources,
        "gateways": gateways,
        "numbers": numbers,
    }


def _set_options(spec: Mapping[str, Any], problems: list[str]) -> tuple[str | None, str]:
    """The set's ``pks_set`` values: (algorithm or None, ruri_host)."""
    algorithm = spec.get("algorithm") or None
    if algorithm is not None:
        try:
            algorithm = parse_algorithm(algorithm)
        except ValueError as exc:
            problems.append(str(exc))
    ruri_host = str(spec.get("ruri_host") or "keep")
    try:
        ruri_host = parse_ruri_host(ruri_host)
    except ValueError as exc:
        problems.append(str(exc))
    return algorithm, ruri_host


def _items(spec: Mapping[str, Any], key: str) -> Sequence[Any]:
    value = spec.get(key) or ()
    return [value] if isinstance(value, str | Mapping) else list(value)


def _gateway(item: Any, socket: str | None, problems: list[str]) -> dict[str, Any]:
    data = dict(item) if isinstance(item, Mapping) else {"uri": item}
    uri = data.get("uri")
    if not isinstance(uri, str) or not uri.strip():
        problems.append(f"gateway {item!r} has no uri")
        uri = ""
    attrs = str(data.get("attrs") or "")
    if socket and "sockname=" not in attrs and "socketname=" not in attrs:
        attrs = f"{attrs};sockname={socket}" if attrs else f"sockname={socket}"
    for key in ("priority", "flags"):
        if not isinstance(data.get(key, 0), int):
            problems.append(f"gateway {uri!r}: {key} must be an integer")
    return {
        "destination": uri.strip(),
        "priority": int(data.get("priority") or 0),
        "flags": int(data.get("flags") or 0),
        "attrs": attrs,
    }


def _new_peer(rows: TableRows, kind: str, clean: dict[str, Any]) -> PeerRow:
    """The peer row, after checking that its name, tag and set are free."""
    taken: list[str] = []
    if any(p.name == clean["name"] for p in rows.peers):
        taken.append(f"name {clean['name']!r} is already used by a customer or provider")
    tag = clean["tag"]
    tagged = [a.id for a in rows.address if a.tag == tag]
    if any(p.tag == tag for p in rows.peers) or tagged:
        taken.append(f"tag {tag!r} is already used (address rows {_ids(tagged)})")
    used = _used_sets(rows)
    setid = clean["setid"]
    if setid is None:
        setid = max(used, default=0) + 1
    elif setid in used:
        taken.append(
            f"set {setid} is already used (by a peer, dispatcher rows or dialplan"
            " attrs); leave setid out to get a free one"
        )
    if taken:
        raise Conflict(f"refused, nothing was written ({kind} {clean['name']!r})", taken)
    return PeerRow(
        id=max((p.id for p in rows.peers), default=0) + 1,
        kind=kind,
        name=clean["name"],
        tag=tag,
        setid=setid,
        socket=clean["socket"],
        max_calls=clean["max_calls"],
        description=clean["description"],
        max_cps=clean["max_cps"] or None,
        max_intl_calls=clean["max_intl_calls"] or None,
    )


def _used_sets(rows: TableRows) -> set[int]:
    used = {p.setid for p in rows.peers} | {d.setid for d in rows.dispatcher}
    used |= {s.setid for s in rows.sets}
    used |= {int(r.attrs) for r in rows.dialplan if r.attrs.isdigit()}
    return used


def _ids(ids: list[int]) -> str:
    return ", ".join(map(str, ids)) or "none"


def _add_rows(rows: TableRows, peer: PeerRow, clean: dict[str, Any]) -> TableRows:
    """``rows`` plus the peer and every row it owns, with ids following the highest."""
    next_address = max((r.id for r in rows.address), default=0) + 1
    next_gateway = max((r.id for r in rows.dispatcher), default=0) + 1
    next_rule = max((r.id for r in rows.dialplan), default=0) + 1
    grp, dpid = GROUP_OF_KIND[peer.kind], DPID_OF_KIND[peer.kind]
    address = tuple(
        AddressRow(next_address + i, grp, ip, mask, port, peer.tag)
        for i, (ip, mask, port) in enumerate(clean["sources"])
    )
    dispatcher = tuple(
        DispatcherRow(
            next_gateway + i,
            peer.setid,
            g["destination"],
            g["flags"],
            g["priority"],
            g["attrs"],
            peer.name,
        )
        for i, g in enumerate(clean["gateways"])
    )
    dialplan = tuple(
        DialplanRow(next_rule + i, dpid, n.pr, n.match_op, n.match_exp, 0, "", "", str(peer.setid))
        for i, n in enumerate(clean["numbers"])
    )
    chosen = SetRow(peer.setid, clean["algorithm"], clean["ruri_host"])
    sets = (chosen,) if chosen.algorithm or chosen.ruri_host != "keep" else ()
    return TableRows(
        address=rows.address + address,
        dialplan=rows.dialplan + dialplan,
        dispatcher=rows.dispatcher + dispatcher,
        peers=(*rows.peers, peer),
        sets=rows.sets + sets,
    )


def _insert_new(conn: Connection, before: TableRows, after: TableRows) -> None:
    """Insert the rows of ``after`` that ``before`` does not have (explicit ids)."""
    for table, name in (
        (schema.address, "address"),
        (schema.dialplan, "dialplan"),
        (schema.dispatcher, "dispatcher"),
    ):
        new = getattr(after, name)[len(getattr(before, name)) :]
        if new:
            conn.execute(insert(table), [dataclasses.asdict(r) for r in new])
            sync_sequence(conn, table)
    for peer in after.peers[len(before.peers) :]:
        values = dataclasses.asdict(peer)
        for column in _LATER_COLUMNS:  # a table at 0002 lacks them: written only when set
            if values[column] is None:
                del values[column]
            else:
                require_column(conn, "pks_peer", column, "0003")
        conn.execute(insert(pks_peer).values(**values))
        sync_sequence(conn, pks_peer)
    for chosen in after.sets[len(before.sets) :]:
        values = {"setid": chosen.setid, "algorithm": chosen.algorithm}
        if chosen.ruri_host != "keep":  # not written otherwise: a table at 0001 has no column
            require_ruri_host_column(conn)
            values["ruri_host"] = chosen.ruri_host
        conn.execute(insert(pks_set).values(**values))


def _view(rows: TableRows, peer: PeerRow) -> dict[str, Any]:
    """A peer whole: its own fields, its set's overrides, and the rows it owns."""
    addresses, gateways, rules = owned_rows(rows, peer)
    chosen = next((s for s in rows.sets if s.setid == peer.setid), SetRow(peer.setid, None))
    return {
        **dataclasses.asdict(peer),
        "algorithm": chosen.algorithm,
        "ruri_host": chosen.ruri_host,
        "sources": [
            {"id": a.id, "ip": a.ip_addr, "mask": a.mask, "port": a.port} for a in addresses
        ],
        "gateways": [
            {
                "id": d.id,
                "uri": d.destination,
                "priority": d.priority,
                "flags": d.flags,
                "attrs": d.attrs,
            }
            for d in gateways
        ],
        "numbers": [
            {
                "id": r.id,
                "dpid": r.dpid,
                "pr": r.pr,
                "match_op": r.match_op,
                "match_exp": r.match_exp,
                "match_len": r.match_len,
            }
            for r in rules
        ],
    }
