"""The driver's loop timer (pks.driver): set on a grid of 1/WAKE_HZ s, never before the core's
next deadline, so that the moot retransmission timers of a moderate rate share wake-ups."""

from __future__ import annotations

import math

from harness import CARRIER, Net, invite

from pks.driver import WAKE_HZ, Driver

DID = "33202020201"


async def test_the_loop_timer_is_set_on_the_wake_grid() -> None:
    net = Net.make()
    net.now = 1000.003  # off the grid of the core's wheel and of the driver
    net.deliver(invite(DID, CARRIER), CARRIER)  # the relayed INVITE arms its timers
    deadline = net.proxy.next_deadline()
    assert deadline is not None
    driver = Driver()
    driver.proxy = net.proxy
    try:
        driver._rearm()
        at = driver._timer_at
        assert at is not None
        assert deadline <= at < deadline + 1 / WAKE_HZ
        assert at * WAKE_HZ == math.ceil(deadline * WAKE_HZ)
        net.deliver(invite(DID, CARRIER, branch="z9hG4bKc2", call_id="call-2"), CARRIER)
        driver._rearm()  # a later deadline (or one in the same tick) keeps the timer as it is
        assert driver._timer_at == at
    finally:
        driver.close()
