"""Step ④ transaction: RFC 3261 §17 transaction state machines, sans-IO (with RFC 6026).

Role in the data flow: between sanity (③) and routing (⑤). The proxy core matches every
message to a transaction (RFC 3261 §17.1.3 / §17.2.3 keys), calls the matching machine with
the current time, and carries out the effects it returns. Nothing here reads the clock, opens
a socket or parses SIP: requests and responses are opaque bytes plus, for responses, their
status code.

Calling convention shared by the four machines:

* every event method takes ``now`` (seconds on the caller's monotonic clock) and returns
  ``list[Effect]``, to be carried out in order: ``Transmit`` (bytes to this transaction's peer),
  ``Deliver``/``DeliverAck`` (pass the message just received up), ``TimedOut``,
  ``TransportFailed`` and, last, ``Terminated`` (remove from the table);
* ``next_deadline()`` is when ``on_timer(now)`` must next be called (the core arms it in a
  ``TimerWheel``); after any call it is None or later than ``now`` as long as
  due timers are fired before other events at a later time;
* ``state`` is the RFC figure state, ``terminated`` whether it is TERMINATED; a terminated
  machine returns no effects.

The proxy's own fr_timer / fr_inv_timer (RFC 3261 Timer C) live in the proxy core, not here; a
CANCEL is sent through its own ``ClientNonInviteTransaction``.
"""

from pks.transaction.client_invite import ClientInviteState, ClientInviteTransaction
from pks.transaction.client_non_invite import ClientNonInviteState, ClientNonInviteTransaction
from pks.transaction.effects import (
    Deliver,
    DeliverAck,
    Effect,
    Terminated,
    TimedOut,
    Transmit,
    TransportFailed,
)
from pks.transaction.server_invite import ServerInviteState, ServerInviteTransaction
from pks.transaction.server_non_invite import ServerNonInviteState, ServerNonInviteTransaction
from pks.transaction.timers import DEFAULT_TIMERS, Timers
from pks.transaction.wheel import TICK, TimerWheel

__all__ = [
    "DEFAULT_TIMERS",
    "TICK",
    "ClientInviteState",
    "ClientInviteTransaction",
    "ClientNonInviteState",
    "ClientNonInviteTransaction",
    "Deliver",
    "DeliverAck",
    "Effect",
    "ServerInviteState",
    "ServerInviteTransaction",
    "ServerNonInviteState",
    "ServerNonInviteTransaction",
    "Terminated",
    "TimedOut",
    "TimerWheel",
    "Timers",
    "Transmit",
    "TransportFailed",
]
