"""Role: drive the sans-IO proxy core from the event loop — the glue every message crosses.

``handle_message`` (the transport's ``on_message``) → ``Proxy.receive`` → its ``Send`` effects →
``Sender.send`` (the transport's, compiled too); after each batch of sends one ``loop.call_at``
is kept armed at the proxy's next deadline, rounded up to a grid of 1/:data:`WAKE_HZ` s (1/16 s,
Kamailio's timer tick). The core's ``TimerWheel`` keeps deadlines on a 10 ms grid, but at a
moderate rate most of them are retransmission timers already made moot by an answer: woken
for every such slot, the loop spent a tenth of its CPU per call at 200 calls/s on timer
wake-ups that had nothing to do. On the coarser grid one wake-up handles every slot due by
then; a timer fires at most 62.5 ms late. Compiled with the core (``pks.accel``): it runs for
every datagram.

Invariant: an exception inside the core is logged and costs that one message (or that one
timer round); it never reaches the transport, and the timer stays armed.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Final

from pks.net import Inbound, Send
from pks.proxy import Proxy
from pks.transport.send import Sender

__all__ = ["WAKE_HZ", "Driver"]

log = logging.getLogger("pks.server")

WAKE_HZ: Final = 16  # timer wake-ups per second at most (the grid the loop's timer is set on)


class Driver:
    """Feeds one `Proxy` from one `Transport`: ``proxy`` and ``sender`` (``Transport.sender``)
    are set once the sockets are bound."""

    def __init__(self) -> None:
        self.proxy: Proxy | None = None
        self.sender: Sender | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        """The event loop, looked up once (``asyncio.get_running_loop`` costs a getpid call)."""
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        return loop

    def handle_message(self, data: bytes, inbound: Inbound) -> None:
        """One received message (dropped while no proxy is set)."""
        proxy = self.proxy
        if proxy is None:
            return
        now = self._running_loop().time()
        try:
            sends = proxy.receive(data, inbound, now)
        except Exception:
            log.exception("internal error on a message from %s; message dropped", inbound.source)
            return
        self.send_all(sends)

    def on_send_error(self, send: Send, reason: str) -> None:
        """The transport could not carry out ``send``: the proxy fails its branch over."""
        proxy = self.proxy
        if proxy is not None:
            now = self._running_loop().time()
            self.send_all(proxy.send_failed(send, reason, now))

    def send_all(self, sends: list[Send]) -> None:
        """Carry out ``sends`` in order, then re-arm the timer."""
        sender = self.sender
        if sender is None:
            return
        for item in sends:
            sender.send(item)
        self._rearm()

    def close(self) -> None:
        self.sender = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = self._timer_at = None
        self._loop = None

    def _rearm(self) -> None:
        proxy = self.proxy
        deadline = proxy.next_deadline() if proxy is not None else None
        if deadline is None:
            return
        when = math.ceil(deadline * WAKE_HZ) / WAKE_HZ
        at = self._timer_at
        if at is not None and at <= when:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = when
        self._timer = self._running_loop().call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        proxy = self.proxy
        if proxy is None:
            return
        now = self._running_loop().time()
        try:
            sends = proxy.on_timer(now)
        except Exception:
            log.exception("internal error in a timer")
            sends = []
        self.send_all(sends)
