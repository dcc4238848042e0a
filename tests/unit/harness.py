"""In-memory UAC ↔ Proxy ↔ UAS exchange on a fake clock (no sockets, no sleeps)."""

from __future__ import annotations

from dataclasses import dataclass, field

from pks.net import Address, Inbound, Proto, Send, SocketInfo
from pks.proxy import CoreConfig, Proxy
from pks.route.rows import AddressRow, DialplanRow, DispatcherRow, TableRows
from pks.route.snapshot import build_snapshot
from pks.sip import Message, parse

PUBLIC = SocketInfo("public", Proto.UDP, "127.0.0.10", 5060)
PUBLIC_TCP = SocketInfo("public", Proto.TCP, "127.0.0.10", 5060)
PRIVATE = SocketInfo("ipbx", Proto.UDP, "127.0.0.11", 5070)

CARRIER = Address("127.0.0.20", 5060)  # grp 2, set 21
PBX = Address("127.0.0.30", 5060)  # grp 1 (customer), its gateway is set 23
PBX2 = Address("127.0.0.31", 5060)  # grp 1, second customer, set 24
GW1 = Address("127.0.0.21", 5060)
GW2 = Address("127.0.0.22", 5060)


def seed_rows(**overrides: tuple[object, ...]) -> TableRows:
    rows = {
        "address": (
            AddressRow(1, 1, PBX.host, 32, 0, "pbx1"),
            AddressRow(2, 2, CARRIER.host, 32, 0, "carrier"),
            AddressRow(3, 1, PBX2.host, 32, 0, "pbx2"),
        ),
        "dialplan": (
            DialplanRow(1, 1, 1, 1, r"^3320202020[0-9]$", 0, "", "", "23"),
            DialplanRow(2, 1, 1, 0, "33299999999", 0, "", "", "24"),
            DialplanRow(3, 2, 1, 1, r"^\+?33[1-9][0-9]+$", 0, "", "", "21"),
        ),
        "dispatcher": (
            DispatcherRow(1, 23, f"sip:{PBX.host}:{PBX.port}", 0, 0, "", "pbx1"),
            DispatcherRow(2, 21, f"sip:{GW1.host}:{GW1.port}", 0, 0, "", "gw1"),
            DispatcherRow(3, 21, f"sip:{GW2.host}:{GW2.port}", 0, 0, "", "gw2"),
            DispatcherRow(4, 24, f"sip:{PBX2.host}:{PBX2.port}", 0, 0, "socketname=ipbx", "pbx2"),
        ),
    }
    rows.update(overrides)  # type: ignore[arg-type]
    return TableRows(**rows)  # type: ignore[arg-type]


@dataclass
class Net:
    """The proxy plus everything it sent, on a settable clock."""

    proxy: Proxy
    now: float = 1000.0
    sent: list[Send] = field(default_factory=list)

    @classmethod
    def make(cls, rows: TableRows | None = None, **config: object) -> Net:
        cfg = CoreConfig(**config)  # type: ignore[arg-type]
        proxy = Proxy((PUBLIC, PUBLIC_TCP, PRIVATE), cfg, build_snapshot(rows or seed_rows()))
        return cls(proxy)

    def deliver(self, data: bytes | str, src: Address, sock: SocketInfo = PUBLIC) -> list[Send]:
        raw = data.encode() if isinstance(data, str) else data
        out = self.proxy.receive(raw, Inbound(sock, src, None), self.now)
        self.sent.extend(out)
        return out

    def advance(self, seconds: float) -> list[Send]:
        """Move the clock, firing every timer on the way (in deadline order)."""
        end = self.now + seconds
        out: list[Send] = []
        for _ in range(10_000):
            nxt = self.proxy.next_deadline()
            if nxt is None or nxt > end:
                break
            self.now = max(self.now, nxt)
            out.extend(self.proxy.on_timer(self.now))
        self.now = end
        self.sent.extend(out)
        return out

    def drain(self) -> None:
        """Run every timer out (transactions must all end)."""
        self.advance(600.0)


def msgs(sends: list[Send], dest: Address | None = None) -> list[Message]:
    return [parse(s.data) for s in sends if dest is None or s.dest == dest]


def invite(
    user: str,
    src: Address,
    *,
    branch: str = "z9hG4bKc1",
    call_id: str = "call-1",
    contact: str | None = None,
    extra: str = "",
    max_forwards: int = 70,
    method: str = "INVITE",
    to_tag: str | None = None,
    cseq: int = 1,
    ruri: str | None = None,
) -> str:
    contact = contact or f"sip:caller@{src}"
    to = f"<sip:{user}@127.0.0.10>" + (f";tag={to_tag}" if to_tag else "")
    body = "v=0\r\n"
    return (
        f"{method} {ruri or f'sip:{user}@127.0.0.10:5060'} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {src};branch={branch}\r\n"
        f"Max-Forwards: {max_forwards}\r\n"
        f"From: <sip:caller@{src.host}>;tag=ft1\r\n"
        f"To: {to}\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: {cseq} {method}\r\n"
        f"Contact: <{contact}>\r\n"
        f"{extra}"
        f"Content-Type: application/sdp\r\n"
        f"Content-Length: {len(body)}\r\n\r\n{body}"
    )


def answer(
    req: Message, status: int, reason: str, *, to_tag: str = "tt1", contact: str | None = None
) -> str:
    """A response from a UAS to the request it received (all Vias copied)."""
    lines = [f"SIP/2.0 {status} {reason}"]
    for h in req.headers:
        if h.key in ("via", "record-route", "from", "call-id", "cseq"):
            lines.append(h.raw.decode("latin-1"))
        elif h.key == "to":
            to = h.raw.decode("latin-1")
            lines.append(to if "tag=" in to or status == 100 else f"{to};tag={to_tag}")
    if contact:
        lines.append(f"Contact: <{contact}>")
    lines.append("Content-Length: 0")
    return "\r\n".join(lines) + "\r\n\r\n"


def bye(
    fwd_invite: Message,
    ruri: str,
    via: Address,
    *,
    from_: str,
    to: str,
    call_id: str = "call-1",
    branch: str = "z9hG4bKb1",
    cseq: int = 1,
) -> str:
    """A BYE sent from ``via`` inside the dialog the forwarded INVITE set up: its Route set is
    the Record-Route the proxy put on that INVITE. ``from_``/``to`` are whole header values."""
    routes = ", ".join(v.strip() for v in fwd_invite.values("record-route"))
    return (
        f"BYE {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP {via};branch={branch}\r\n"
        f"Route: {routes}\r\nMax-Forwards: 70\r\nFrom: {from_}\r\nTo: {to}\r\n"
        f"Call-ID: {call_id}\r\nCSeq: {cseq} BYE\r\nContent-Length: 0\r\n\r\n"
    )
