"""Step ① → ②: the two callbacks the transport calls, and the guard around them.

The contract between this package and the proxy core. The transport calls ``on_message(data,
inbound)`` once per received SIP message, synchronously, and ``on_send_error(send, reason)``
when it could not carry out a `Send` effect (never from inside `Transport.send` itself: it is
scheduled with ``call_soon`` so the proxy is not re-entered).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from pks.net import Inbound, Send

__all__ = ["MessageHandler", "SendErrorHandler", "deliver"]

MessageHandler = Callable[[bytes, Inbound], None]
SendErrorHandler = Callable[[Send, str], None]

log = logging.getLogger("pks.transport")


def deliver(on_message: MessageHandler, data: bytes, inbound: Inbound) -> None:
    """Call ``on_message``; an exception there is logged and never reaches the protocol."""
    try:
        on_message(data, inbound)
    except Exception:
        log.exception("message handler failed on %d bytes from %s", len(data), inbound.source)
