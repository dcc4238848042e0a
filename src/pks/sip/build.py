"""Messages we write ourselves: local responses to a request (RFC 3261 §8.2.6, §16.7).

Part of step ② (the writing half). A local response copies Via (all of them, the top one with
``received``/``rport`` when RFC 3581 asks), From, To (with a To-tag for non-100 answers),
Call-ID and CSeq from the request, then any extra headers, then ``Content-Length: 0``.
"""

from __future__ import annotations

import hashlib
from typing import Final

from pks.sip.message import Message
from pks.sip.status import reason as std_reason

_COPIED: Final = ("from", "call-id", "cseq")


def local_tag(req: Message) -> str:
    """A To-tag stable for one request, so a retransmitted reply carries the same tag."""
    seed = b"|".join(
        (
            req.get("call-id") or b"",
            req.get("from") or b"",
            req.get("cseq") or b"",
            req.get("via") or b"",
        )
    )
    return "pks" + hashlib.blake2b(seed, digest_size=6).hexdigest()


def response(
    req: Message,
    status: int,
    reason: str | None = None,
    *,
    top_via: str | None = None,
    to_tag: str | None = None,
    extra: tuple[tuple[str, str], ...] = (),
    server: str = "",
) -> bytes:
    """A response to ``req``. ``top_via`` replaces the first Via value (received/rport)."""
    out = [f"SIP/2.0 {status} {reason or std_reason(status)}".encode("latin-1")]
    first_via = True
    for h in req.headers:
        if h.key == "via":
            if first_via and top_via is not None:
                vals = h.value.decode("latin-1").split(",", 1)
                line = "Via: " + top_via + ("," + vals[1] if len(vals) > 1 else "")
                out.append(line.encode("latin-1"))
            else:
                out.append(h.raw)
            first_via = False
    for h in req.headers:
        if h.key in _COPIED:
            out.append(h.raw)
        elif h.key == "to":
            raw = h.raw
            if status > 100 and h.value.lower().find(b"tag=") < 0:
                raw = raw.rstrip() + f";tag={to_tag or local_tag(req)}".encode()
            out.append(raw)
    for name, value in extra:
        out.append(f"{name}: {value}".encode("latin-1"))
    if server:
        out.append(b"Server: " + server.encode("latin-1"))
    out.append(b"Content-Length: 0")
    return b"\r\n".join(out) + b"\r\n\r\n"
