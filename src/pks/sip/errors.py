"""The one error the SIP message layer raises.

``ParseError`` carries a human reason and the status a UAS should answer with (400 unless the
defect calls for another code, e.g. 505 for an unknown SIP version). ``partial`` is the message
as far as it could be parsed — enough to build a stateless error reply when the headers needed
for one (Via, From, To, Call-ID, CSeq) were read — or None.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pks.sip.message import Message


class ParseError(ValueError):
    """Malformed SIP input. ``status`` is the reply code RFC 3261 asks for."""

    def __init__(self, reason: str, status: int = 400, partial: Message | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.partial = partial
