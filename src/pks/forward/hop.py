"""Hop-by-hop requests the proxy writes itself: ACK for a non-2xx final, CANCEL (RFC 3261 §9.1,
§17.1.1.3).

Part of step ⑥. Both copy from the request we sent on that branch: Request-URI, our top Via
(same branch), From, Call-ID, CSeq number, Route; the ACK takes To from the response.
"""

from __future__ import annotations

from pks.sip import Message

_KEEP = ("from", "call-id", "to", "route")


def _hop_request(sent: Message, method: str, to_raw: bytes | None) -> bytes:
    out = [f"{method} {sent.ruri} SIP/2.0".encode("latin-1")]
    for h in sent.headers:
        if h.key == "via":
            out.append(b"Via: " + h.value.split(b",", 1)[0].strip())
            break
    for h in sent.headers:
        if h.key == "to" and to_raw is not None:
            out.append(to_raw)
        elif h.key in _KEEP:
            out.append(h.raw)
    out.append(f"CSeq: {sent.cseq.number} {method}".encode())
    out.append(b"Max-Forwards: 70")
    out.append(b"Content-Length: 0")
    return b"\r\n".join(out) + b"\r\n\r\n"


def ack_for(sent: Message, final: Message) -> bytes:
    """The ACK a client INVITE transaction sends for a 300–699 final response."""
    to_raw = next((h.raw for h in final.headers if h.key == "to"), None)
    return _hop_request(sent, "ACK", to_raw)


def cancel_for(sent: Message) -> bytes:
    """A CANCEL for the INVITE ``sent`` on one branch."""
    return _hop_request(sent, "CANCEL", None)
