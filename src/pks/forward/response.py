"""Responses: choosing the one sent upstream when every branch has ended (RFC 3261 §16.7
step 6), writing our own, relaying a stray 2xx.

Part of step ⑥. Among the final responses collected (timeouts count as 408): any 6xx wins;
otherwise the lowest class, the first received within it. A chosen 503 is sent as 500
(§16.7: a proxy must not pass 503 upstream as its own; Kamailio's ``remap_503_500`` too).
"""

from __future__ import annotations

from collections.abc import Callable

from pks.forward.nat import fix_top_via
from pks.net import Inbound, Proto, Send, SocketInfo, address, send_to
from pks.sip import Message, ParseError, response

#: Picks the socket to send from: (name, proto, inbound socket) → socket (pks.forward.sockets).
Pick = Callable[[str | None, Proto, SocketInfo | None], SocketInfo | None]


def best(codes: list[int]) -> int:
    """Index of the best final response among ``codes`` (non-empty)."""
    for i, code in enumerate(codes):
        if code >= 600:
            return i
    return min(range(len(codes)), key=lambda i: (codes[i] // 100, i))


def upstream_code(code: int) -> int:
    return 500 if code == 503 else code


def reply_bytes(
    msg: Message,
    inbound: Inbound,
    code: int,
    reason: str | None,
    server: str,
    extra: tuple[tuple[str, str], ...] = (),
) -> bytes:
    """Our response to ``msg`` (its top Via fixed for NAT as the response goes back)."""
    top: str | None = None
    try:  # not contextlib.suppress: Python code per reply
        top = fix_top_via(msg.top_via, inbound.source)
    except ParseError:
        top = None
    return response(msg, code, reason, top_via=top, extra=extra, server=server)


def stray_2xx(msg: Message, prefix: str, admits: Callable[[str], bool], pick: Pick) -> Send | None:
    """A 2xx to an INVITE matching no transaction (RFC 6026 §7.2: relayed statelessly), only
    when its top Via is ours and its next one is a known peer — never a reflector."""
    vias = msg.vias
    if len(vias) < 2 or not (vias[0].branch or "").startswith(prefix):
        return None
    nxt = vias[1]
    host = nxt.received or nxt.host_bare
    if host == "255.255.255.255" or (not host[:1].isdigit() and ":" not in host):
        return None
    if not admits(host):
        return None
    sock = pick(None, Proto.TCP if nxt.transport == "TCP" else Proto.UDP, None)
    if sock is None:
        return None
    fwd = msg.copy()
    fwd.replace_first_value("via", None)
    return send_to(fwd.to_bytes(), address(host, nxt.rport or nxt.port or 5060), sock)
