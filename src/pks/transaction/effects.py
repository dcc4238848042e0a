"""Step ④ transaction — the effects a transaction machine returns to the proxy core.

Role: every machine call returns ``list[Effect]``, in the order the proxy must carry them out.
The machines never see addresses or messages: ``Transmit`` goes to the transaction's own peer
(the proxy knows where that is), and ``Deliver``/``DeliverAck`` refer to the message the proxy
just handed in (the proxy holds it). This keeps the machines independent of the SIP message
model (RFC 3261 §17 only needs status classes and opaque bytes).

Invariants: a machine emits ``Terminated`` exactly once, last in its list, and emits nothing
after it. Effects are immutable values (the two made per message are `Record` classes, built
by compiled code without an interpreted constructor); the fieldless ones are shared singletons.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, TypeAlias

from pks.sip.record import Record

__all__ = [
    "DELIVER_ACK",
    "TERMINATED",
    "TIMED_OUT",
    "TRANSPORT_FAILED",
    "Deliver",
    "DeliverAck",
    "Effect",
    "Terminated",
    "TimedOut",
    "Transmit",
    "TransportFailed",
]


class Transmit(Record):
    """Send ``data`` to this transaction's peer: a request (client) or a response (server)."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def _fields(self) -> tuple[object, ...]:
        return (self.data,)


class Deliver(Record):
    """Client side: pass the response just received (``status``) up to the TU.

    In the INVITE client's Accepted state (RFC 6026 §7.2) this is a 2xx retransmission or a
    2xx from another fork; the proxy forwards it statelessly (RFC 3261 §16.7 step 5).
    """

    __slots__ = ("status",)

    def __init__(self, status: int) -> None:
        self.status = status

    def _fields(self) -> tuple[object, ...]:
        return (self.status,)


@dataclass(frozen=True, slots=True)
class DeliverAck:
    """INVITE server in Accepted: the ACK just received is for a 2xx and goes up to the TU.

    RFC 6026 §8.7: such an ACK is not absorbed; the proxy routes it like any ACK for a 2xx.
    """


@dataclass(frozen=True, slots=True)
class TimedOut:
    """The transaction failed by timeout.

    Client: Timer B or F fired with no final response; the TU acts as if a 408 had arrived
    (RFC 3261 §8.1.3.1, §16.7 step 2). Server INVITE: Timer H fired with no ACK; the TU is told
    of the failure (RFC 3261 §17.2.1) and may log it.
    """


@dataclass(frozen=True, slots=True)
class TransportFailed:
    """The transport reported a failure sending for this transaction (RFC 3261 §17.1.4, §17.2.4).

    A client TU acts as for a 503 (RFC 3261 §8.1.3.1); a server TU only learns of it.
    """


@dataclass(frozen=True, slots=True)
class Terminated:
    """The transaction is over: remove it from the table. Always the last effect of a call."""


Effect: TypeAlias = Transmit | Deliver | DeliverAck | TimedOut | TransportFailed | Terminated

# The fieldless effects carry no data, so one instance of each is enough.
DELIVER_ACK: Final = DeliverAck()
TIMED_OUT: Final = TimedOut()
TRANSPORT_FAILED: Final = TransportFailed()
TERMINATED: Final = Terminated()
