"""Hypothesis: any sequence of events, on any transport and timer setting, keeps the machines
inside their contract.

The driver behaves like the proxy's event loop: before an event at time ``t`` it fires every
timer due at or before ``t``, each at its deadline. After every call we check that the call did
not raise, that nothing (and above all no ``Transmit``) comes after ``Terminated``, that
``Terminated`` comes exactly once and last, and that the next deadline is None or in the future.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from pks.transaction import (
    DEFAULT_TIMERS,
    ClientInviteTransaction,
    ClientNonInviteTransaction,
    Effect,
    ServerInviteTransaction,
    ServerNonInviteTransaction,
    Terminated,
    Timers,
    Transmit,
)

STATUSES = [100, 180, 183, 199, 200, 202, 299, 300, 302, 404, 408, 486, 487, 500, 503, 603, 699]
ACK = b"ACK"
_MAX_FIRINGS = 1000

Machine = (
    ClientInviteTransaction
    | ClientNonInviteTransaction
    | ServerInviteTransaction
    | ServerNonInviteTransaction
)


@dataclass(frozen=True)
class Event:
    name: str
    status: int = 0


def _response(txn: Machine, event: Event, now: float) -> list[Effect]:
    if isinstance(txn, ClientInviteTransaction | ClientNonInviteTransaction):
        return txn.on_response(event.status, now, ACK)
    return txn.send_response(event.status, b"%d" % event.status, now)


def _ack(txn: Machine, event: Event, now: float) -> list[Effect]:
    assert isinstance(txn, ServerInviteTransaction)
    return txn.on_ack(now)


def _retransmission(txn: Machine, event: Event, now: float) -> list[Effect]:
    assert isinstance(txn, ServerInviteTransaction | ServerNonInviteTransaction)
    return txn.on_retransmission(now)


def _timer(txn: Machine, event: Event, now: float) -> list[Effect]:
    return txn.on_timer(now)


def _transport_error(txn: Machine, event: Event, now: float) -> list[Effect]:
    return txn.on_transport_error(now)


HANDLERS: dict[str, Callable[[Machine, Event, float], list[Effect]]] = {
    "response": _response,
    "ack": _ack,
    "retransmission": _retransmission,
    "timer": _timer,
    "transport_error": _transport_error,
}


class Checker:
    """Follows one machine through a run and asserts the contract after every call."""

    def __init__(self, txn: Machine) -> None:
        self.txn = txn
        self.terminations = 0

    def check(self, effects: list[Effect], now: float) -> None:
        txn = self.txn
        if self.terminations:
            assert effects == [], "a terminated machine emitted effects"
        if any(isinstance(effect, Terminated) for effect in effects):
            assert isinstance(effects[-1], Terminated), "Terminated must come last"
            assert sum(isinstance(effect, Terminated) for effect in effects) == 1
            self.terminations += 1
        assert txn.terminated == bool(self.terminations)
        deadline = txn.next_deadline()
        if txn.terminated:
            assert deadline is None
        else:
            assert deadline is None or deadline > now, "deadline left in the past"

    def advance(self, until: float) -> None:
        for _ in range(_MAX_FIRINGS):
            deadline = self.txn.next_deadline()
            if deadline is None or deadline > until:
                return
            self.check(self.txn.on_timer(deadline), deadline)
        raise AssertionError("timers did not settle")

    def run(self, start: float, steps: list[tuple[float, Event]]) -> None:
        now = start
        for delay, event in steps:
            now += delay
            self.advance(now)
            self.check(HANDLERS[event.name](self.txn, event, now), now)
        self.advance(now + 1000.0)


timers_st = st.sampled_from([DEFAULT_TIMERS, Timers(t1=0.1, t2=0.4, t4=0.5), Timers(1.0, 1.0, 2.0)])
delay_st = st.one_of(
    st.sampled_from([0.0, 0.5, 1.0, 4.0, 5.0, 32.0]),
    st.floats(min_value=0.0, max_value=40.0, allow_nan=False),
)
response_st = st.builds(Event, st.just("response"), st.sampled_from(STATUSES))


def steps_st(*names: str) -> st.SearchStrategy[list[tuple[float, Event]]]:
    event_st = st.one_of(response_st, st.sampled_from([Event(name) for name in names]))
    return st.lists(st.tuples(delay_st, event_st), max_size=25)


_settings = settings(derandomize=True, max_examples=200, deadline=None)


@_settings
@given(st.booleans(), timers_st, steps_st("timer", "transport_error"))
def test_client_invite_contract(
    reliable: bool, timers: Timers, steps: list[tuple[float, Event]]
) -> None:
    txn = ClientInviteTransaction(b"INVITE", reliable=reliable, timers=timers)
    checker = Checker(txn)
    checker.check(txn.start(0.0), 0.0)
    checker.run(0.0, steps)
    assert txn.terminated or txn.next_deadline() is None


@_settings
@given(st.booleans(), timers_st, steps_st("timer", "transport_error"))
def test_client_non_invite_contract(
    reliable: bool, timers: Timers, steps: list[tuple[float, Event]]
) -> None:
    txn = ClientNonInviteTransaction(b"OPTIONS", reliable=reliable, timers=timers)
    checker = Checker(txn)
    checker.check(txn.start(0.0), 0.0)
    checker.run(0.0, steps)
    # Timer F bounds every non-INVITE client transaction.
    assert txn.terminated


@_settings
@given(st.booleans(), timers_st, steps_st("ack", "retransmission", "timer", "transport_error"))
def test_server_invite_contract(
    reliable: bool, timers: Timers, steps: list[tuple[float, Event]]
) -> None:
    txn = ServerInviteTransaction(reliable=reliable, timers=timers)
    checker = Checker(txn)
    checker.run(0.0, steps)
    # Only PROCEEDING waits for the TU without a timer.
    assert txn.terminated or txn.next_deadline() is None


@_settings
@given(st.booleans(), timers_st, steps_st("retransmission", "timer", "transport_error"))
def test_server_non_invite_contract(
    reliable: bool, timers: Timers, steps: list[tuple[float, Event]]
) -> None:
    txn = ServerNonInviteTransaction(reliable=reliable, timers=timers)
    checker = Checker(txn)
    checker.run(0.0, steps)
    assert txn.terminated or txn.next_deadline() is None


@_settings
@given(st.booleans(), steps_st("timer", "transport_error"))
def test_invite_is_retransmitted_only_over_udp_before_any_response(
    reliable: bool, steps: list[tuple[float, Event]]
) -> None:
    txn = ClientInviteTransaction(b"INVITE", reliable=reliable)
    txn.start(0.0)
    now = 0.0
    answered = False
    for delay, event in steps:
        now += delay
        for _ in range(_MAX_FIRINGS):
            deadline = txn.next_deadline()
            if deadline is None or deadline > now:
                break
            fired = txn.on_timer(deadline)
            if reliable or answered:
                assert not any(isinstance(effect, Transmit) for effect in fired)
        effects = HANDLERS[event.name](txn, event, now)
        answered = answered or event.name == "response"
        # The only thing ever sent in answer to a response is the ACK for a failure.
        assert all(effect == Transmit(ACK) for effect in effects if isinstance(effect, Transmit))
