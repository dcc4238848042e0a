"""Step ③: request and response sanity checks, from parse to the transaction layer.

One ``check_*`` function per rule, run in a fixed order; the first failure wins. Each returns
``None`` (pass) or a ``Reject`` saying which reply to send (``code`` 0 = drop silently). The
rules follow Kamailio's sanity module (kamailio-semantics.md §4) and RFC 4475's verdicts:
required headers present and single, every Via parses, R-URI parses with a known scheme (416
otherwise, no ``?headers``), CSeq number is uint32 and its method matches, Max-Forwards and
Expires are numbers, From/To/Contact parse with at most one tag, Proxy-Require lists nothing
(we support no extension: 420 with ``Unsupported``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from pks.sip import Message, ParseError
from pks.sip.names import SINGLE_HEADERS

REQUIRED: Final = ("via", "from", "to", "call-id", "cseq")
SCHEMES: Final = frozenset({"sip", "sips", "tel", "tels"})
MAX_U32: Final = 2**32 - 1


@dataclass(frozen=True, slots=True)
class Reject:
    """A failed check: reply ``code``/``reason`` (0 = drop), with ``extra`` headers."""

    code: int
    reason: str
    extra: tuple[tuple[str, str], ...] = ()


def check_required(msg: Message) -> Reject | None:
    for key in REQUIRED:
        if msg.get(key) is None:
            return Reject(400, f"Missing {key.title()} Header")
    return None


def check_single(msg: Message) -> Reject | None:
    seen: set[str] = set()
    for h in msg.headers:
        if h.key in SINGLE_HEADERS:
            if h.key in seen:
                return Reject(400, f"Duplicate {h.key.title()} Header")
            seen.add(h.key)
    return None


def check_via(msg: Message) -> Reject | None:
    _ = msg.vias
    return None


def check_ruri(msg: Message) -> Reject | None:
    uri = msg.uri
    if uri.scheme not in SCHEMES:
        return Reject(416, "Unsupported URI Scheme in Request URI")
    if uri.headers is not None:
        return Reject(400, "Headers Not Allowed in Request URI")
    return None


def check_cseq(msg: Message) -> Reject | None:
    cseq = msg.cseq
    if cseq.method != msg.method:
        return Reject(400, "CSeq method does not match request method")
    return None


def check_numbers(msg: Message) -> Reject | None:
    _ = msg.max_forwards
    expires = msg.get("expires")
    if expires is not None and (not expires.isdigit() or int(expires) > MAX_U32):
        return Reject(400, "Bad Expires Header")
    return None


def check_addresses(msg: Message) -> Reject | None:
    for addr in (msg.from_, msg.to):
        if sum(1 for k, _ in addr.params if k == "tag") > 1:
            return Reject(400, "Many Tag Params")
    _ = msg.contacts
    return None


def check_proxy_require(msg: Message) -> Reject | None:
    if msg.get("proxy-require") is None or msg.method in ("ACK", "CANCEL"):
        return None
    tokens = [t.strip() for t in msg.values("proxy-require") if t.strip()]
    if tokens:
        return Reject(420, "Bad Extension", (("Unsupported", ", ".join(tokens)),))
    return None


def check_request(msg: Message) -> Reject | None:
    """Run every request check, in this order (direct calls: a loop over a tuple of the
    functions would make a generic call of each); a malformed header becomes a 400 naming
    the defect."""
    try:
        return (
            check_required(msg)
            or check_single(msg)
            or check_via(msg)
            or check_ruri(msg)
            or check_cseq(msg)
            or check_numbers(msg)
            or check_addresses(msg)
            or check_proxy_require(msg)
        )
    except ParseError as exc:
        return Reject(exc.status, f"Bad Request ({exc.reason})"[:120])


def check_response(msg: Message) -> str | None:
    """A response we may relay; returns why it must be dropped, or None."""
    try:
        _ = msg.top_via  # the only one we read: the next hop upstream reads the others
        _ = msg.cseq
        if msg.get("call-id") is None:
            return "missing Call-ID"
    except ParseError as exc:
        return exc.reason
    return None
