"""Non-INVITE client transaction: every arc of RFC 3261 Figure 6."""

from __future__ import annotations

import pytest

from pks.transaction import (
    ClientNonInviteState,
    ClientNonInviteTransaction,
    Deliver,
    Terminated,
    TimedOut,
    Timers,
    Transmit,
    TransportFailed,
)

from .drive import non_transmits, run_timers, transmit_times

BYE = b"BYE sip:bob@example.com SIP/2.0\r\n\r\n"
T0 = 1000.0


def started(*, reliable: bool, timers: Timers | None = None) -> ClientNonInviteTransaction:
    txn = (
        ClientNonInviteTransaction(BYE, reliable=reliable)
        if timers is None
        else ClientNonInviteTransaction(BYE, reliable=reliable, timers=timers)
    )
    assert txn.start(T0) == [Transmit(BYE)]
    return txn


def test_new_transaction_is_trying_with_no_timer() -> None:
    txn = ClientNonInviteTransaction(BYE, reliable=False)
    assert txn.state is ClientNonInviteState.TRYING
    assert not txn.terminated
    assert txn.next_deadline() is None


def test_timer_e_doubles_up_to_t2_until_timer_f_over_udp() -> None:
    txn = started(reliable=False)
    assert txn.next_deadline() == T0 + 0.5
    log = run_timers(txn, T0 + 100.0)
    expected = [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert transmit_times(log) == [T0 + t for t in expected]
    assert all(effect == Transmit(BYE) for _, effect in log if isinstance(effect, Transmit))
    assert non_transmits(log) == [(T0 + 32.0, TimedOut()), (T0 + 32.0, Terminated())]
    assert txn.state is ClientNonInviteState.TERMINATED
    assert txn.next_deadline() is None


def test_timer_e_cap_follows_t2() -> None:
    txn = started(reliable=False, timers=Timers(t1=0.5, t2=2.0))
    log = run_timers(txn, T0 + 10.0)
    assert transmit_times(log) == [T0 + t for t in (0.5, 1.5, 3.5, 5.5, 7.5, 9.5)]


def test_no_retransmission_over_reliable_transport_only_timer_f() -> None:
    txn = started(reliable=True)
    assert txn.next_deadline() == T0 + 32.0
    assert run_timers(txn, T0 + 100.0) == [(T0 + 32.0, TimedOut()), (T0 + 32.0, Terminated())]


def test_provisional_moves_to_proceeding_where_e_fires_every_t2() -> None:
    txn = started(reliable=False)
    run_timers(txn, T0 + 0.5)  # first retransmission; E is now due at +1.5
    assert txn.on_response(100, T0 + 1.0) == [Deliver(100)]
    assert txn.state is ClientNonInviteState.PROCEEDING
    assert txn.next_deadline() == T0 + 1.5
    log = run_timers(txn, T0 + 100.0)
    expected = [1.5, 5.5, 9.5, 13.5, 17.5, 21.5, 25.5, 29.5]
    assert transmit_times(log) == [T0 + t for t in expected]
    assert non_transmits(log) == [(T0 + 32.0, TimedOut()), (T0 + 32.0, Terminated())]


def test_provisionals_in_proceeding_are_delivered() -> None:
    txn = started(reliable=True)
    assert txn.on_response(100, T0 + 1.0) == [Deliver(100)]
    assert txn.on_response(180, T0 + 2.0) == [Deliver(180)]
    assert txn.state is ClientNonInviteState.PROCEEDING
    assert txn.next_deadline() == T0 + 32.0


@pytest.mark.parametrize("from_proceeding", [False, True])
@pytest.mark.parametrize("status", [200, 404, 699])
def test_final_moves_to_completed_for_timer_k_over_udp(from_proceeding: bool, status: int) -> None:
    txn = started(reliable=False)
    if from_proceeding:
        txn.on_response(100, T0 + 0.1)
    assert txn.on_response(status, T0 + 1.0) == [Deliver(status)]
    assert txn.state is ClientNonInviteState.COMPLETED
    assert txn.next_deadline() == T0 + 6.0
    # Response retransmissions are absorbed.
    assert txn.on_response(status, T0 + 2.0) == []
    assert txn.on_response(100, T0 + 3.0) == []
    log = run_timers(txn, T0 + 100.0)
    assert log == [(T0 + 6.0, Terminated())]


def test_final_over_reliable_transport_terminates_at_once() -> None:
    txn = started(reliable=True)
    assert txn.on_response(200, T0 + 1.0) == [Deliver(200), Terminated()]
    assert txn.terminated
    assert txn.next_deadline() is None


@pytest.mark.parametrize("in_proceeding", [False, True])
def test_transport_error_informs_tu_and_terminates(in_proceeding: bool) -> None:
    txn = started(reliable=False)
    if in_proceeding:
        txn.on_response(100, T0 + 0.1)
    assert txn.on_transport_error(T0 + 0.2) == [TransportFailed(), Terminated()]
    assert txn.terminated
    assert txn.next_deadline() is None


def test_transport_error_in_completed_is_ignored() -> None:
    txn = started(reliable=False)
    txn.on_response(200, T0 + 1.0)
    assert txn.on_transport_error(T0 + 2.0) == []
    assert txn.state is ClientNonInviteState.COMPLETED


def test_start_twice_is_a_caller_bug() -> None:
    txn = started(reliable=True)
    with pytest.raises(RuntimeError):
        txn.start(T0)


def test_terminated_transaction_absorbs_everything() -> None:
    txn = started(reliable=True)
    txn.on_response(200, T0 + 1.0)
    for status in (100, 200, 486):
        assert txn.on_response(status, T0 + 2.0) == []
    assert txn.on_timer(T0 + 100.0) == []
    assert txn.on_transport_error(T0 + 100.0) == []
