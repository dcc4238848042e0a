"""INVITE client transaction: every arc of RFC 3261 Figure 5 and RFC 6026 Figure 5."""

from __future__ import annotations

import pytest

from pks.transaction import (
    ClientInviteState,
    ClientInviteTransaction,
    Deliver,
    Terminated,
    TimedOut,
    Timers,
    Transmit,
    TransportFailed,
)

from .drive import non_transmits, run_timers, transmit_times

INVITE = b"INVITE sip:bob@example.com SIP/2.0\r\n\r\n"
ACK = b"ACK sip:bob@example.com SIP/2.0\r\n\r\n"
T0 = 1000.0


def started(*, reliable: bool, timers: Timers | None = None) -> ClientInviteTransaction:
    txn = (
        ClientInviteTransaction(INVITE, reliable=reliable)
        if timers is None
        else ClientInviteTransaction(INVITE, reliable=reliable, timers=timers)
    )
    assert txn.start(T0) == [Transmit(INVITE)]
    return txn


def proceeding(*, reliable: bool) -> ClientInviteTransaction:
    txn = started(reliable=reliable)
    assert txn.on_response(180, T0 + 0.2) == [Deliver(180)]
    return txn


def test_new_transaction_is_calling_with_no_timer() -> None:
    txn = ClientInviteTransaction(INVITE, reliable=False)
    assert txn.state is ClientInviteState.CALLING
    assert not txn.terminated
    assert txn.next_deadline() is None
    assert txn.on_timer(T0 + 100.0) == []


def test_timer_a_doubles_from_t1_until_timer_b_over_udp() -> None:
    txn = started(reliable=False)
    assert txn.next_deadline() == T0 + 0.5
    log = run_timers(txn, T0 + 100.0)
    assert transmit_times(log) == [T0 + t for t in (0.5, 1.5, 3.5, 7.5, 15.5, 31.5)]
    assert all(effect == Transmit(INVITE) for _, effect in log if isinstance(effect, Transmit))
    assert non_transmits(log) == [(T0 + 32.0, TimedOut()), (T0 + 32.0, Terminated())]
    assert txn.state is ClientInviteState.TERMINATED
    assert txn.terminated
    assert txn.next_deadline() is None


def test_timer_a_is_not_capped_at_t2() -> None:
    txn = started(reliable=False, timers=Timers(t1=0.5, t2=1.0))
    log = run_timers(txn, T0 + 8.0)
    assert transmit_times(log) == [T0 + 0.5, T0 + 1.5, T0 + 3.5, T0 + 7.5]


def test_no_retransmission_over_reliable_transport_only_timer_b() -> None:
    txn = started(reliable=True)
    assert txn.next_deadline() == T0 + 32.0
    assert txn.on_timer(T0 + 31.999) == []
    log = run_timers(txn, T0 + 100.0)
    assert log == [(T0 + 32.0, TimedOut()), (T0 + 32.0, Terminated())]


def test_timer_b_follows_t1() -> None:
    txn = started(reliable=True, timers=Timers(t1=1.0, t2=4.0))
    assert txn.next_deadline() == T0 + 64.0


def test_late_timer_call_retransmits_once_and_rearms_from_now() -> None:
    txn = started(reliable=False)
    assert txn.on_timer(T0 + 2.0) == [Transmit(INVITE)]
    assert txn.next_deadline() == T0 + 3.0


def test_timer_b_wins_over_a_due_retransmission() -> None:
    txn = started(reliable=False)
    assert txn.on_timer(T0 + 40.0) == [TimedOut(), Terminated()]


def test_start_twice_is_a_caller_bug() -> None:
    txn = started(reliable=False)
    with pytest.raises(RuntimeError):
        txn.start(T0 + 1.0)


def test_start_after_an_event_is_a_caller_bug() -> None:
    txn = ClientInviteTransaction(INVITE, reliable=False)
    txn.on_response(100, T0)
    with pytest.raises(RuntimeError):
        txn.start(T0)


def test_provisional_in_calling_moves_to_proceeding_and_stops_a_and_b() -> None:
    txn = started(reliable=False)
    assert txn.on_response(100, T0 + 0.1) == [Deliver(100)]
    assert txn.state is ClientInviteState.PROCEEDING
    assert txn.next_deadline() is None
    assert run_timers(txn, T0 + 1000.0) == []


def test_provisionals_in_proceeding_are_delivered() -> None:
    txn = proceeding(reliable=False)
    assert txn.on_response(183, T0 + 1.0) == [Deliver(183)]
    assert txn.on_response(180, T0 + 2.0) == [Deliver(180)]
    assert txn.state is ClientInviteState.PROCEEDING


@pytest.mark.parametrize("from_proceeding", [False, True])
def test_failure_sends_ack_delivers_and_waits_timer_d_over_udp(from_proceeding: bool) -> None:
    txn = proceeding(reliable=False) if from_proceeding else started(reliable=False)
    assert txn.on_response(486, T0 + 1.0, ACK) == [Transmit(ACK), Deliver(486)]
    assert txn.state is ClientInviteState.COMPLETED
    assert txn.next_deadline() == T0 + 33.0
    # Retransmissions of the final response are answered with the stored ACK, not passed up.
    assert txn.on_response(486, T0 + 2.0) == [Transmit(ACK)]
    assert txn.on_response(486, T0 + 3.0, b"another ACK") == [Transmit(ACK)]
    # Other responses are absorbed.
    assert txn.on_response(180, T0 + 4.0) == []
    assert txn.on_response(200, T0 + 5.0) == []
    assert run_timers(txn, T0 + 100.0) == [(T0 + 33.0, Terminated())]
    assert txn.terminated


def test_failure_over_reliable_transport_terminates_at_once() -> None:
    txn = proceeding(reliable=True)
    effects = txn.on_response(503, T0 + 1.0, ACK)
    assert effects == [Transmit(ACK), Deliver(503), Terminated()]
    assert txn.state is ClientInviteState.TERMINATED
    assert txn.next_deadline() is None


def test_failure_stops_timer_a() -> None:
    txn = started(reliable=False)
    txn.on_response(404, T0 + 0.2, ACK)
    assert transmit_times(run_timers(txn, T0 + 100.0)) == []


def test_failure_without_ack_is_a_caller_bug_and_changes_nothing() -> None:
    txn = started(reliable=False)
    with pytest.raises(ValueError, match="ACK"):
        txn.on_response(486, T0 + 1.0)
    assert txn.state is ClientInviteState.CALLING
    assert txn.next_deadline() == T0 + 0.5


@pytest.mark.parametrize("reliable", [False, True])
@pytest.mark.parametrize("from_proceeding", [False, True])
def test_2xx_moves_to_accepted_for_timer_m(reliable: bool, from_proceeding: bool) -> None:
    txn = proceeding(reliable=reliable) if from_proceeding else started(reliable=reliable)
    assert txn.on_response(200, T0 + 1.0) == [Deliver(200)]
    assert txn.state is ClientInviteState.ACCEPTED
    assert txn.next_deadline() == T0 + 33.0
    # RFC 6026 §7.2: further 2xx (retransmissions, other forks) go up; no ACK from here.
    assert txn.on_response(200, T0 + 2.0) == [Deliver(200)]
    assert txn.on_response(202, T0 + 3.0, ACK) == [Deliver(202)]
    assert txn.on_response(180, T0 + 4.0) == []
    assert txn.on_response(486, T0 + 5.0, ACK) == []
    assert run_timers(txn, T0 + 100.0) == [(T0 + 33.0, Terminated())]
    assert txn.terminated


def test_transport_error_in_calling_informs_tu_and_terminates() -> None:
    txn = started(reliable=True)
    assert txn.on_transport_error(T0 + 0.1) == [TransportFailed(), Terminated()]
    assert txn.terminated
    assert txn.next_deadline() is None


def test_transport_error_in_completed_informs_tu_and_terminates() -> None:
    txn = started(reliable=False)
    txn.on_response(486, T0 + 1.0, ACK)
    assert txn.on_transport_error(T0 + 1.1) == [TransportFailed(), Terminated()]
    assert txn.terminated


def test_transport_error_is_ignored_where_nothing_is_sent() -> None:
    txn = proceeding(reliable=False)
    assert txn.on_transport_error(T0 + 1.0) == []
    txn.on_response(200, T0 + 2.0)
    assert txn.on_transport_error(T0 + 3.0) == []
    assert txn.state is ClientInviteState.ACCEPTED


def test_terminated_transaction_absorbs_everything() -> None:
    txn = started(reliable=True)
    txn.on_transport_error(T0)
    for status in (100, 180, 200, 486):
        assert txn.on_response(status, T0 + 1.0, ACK) == []
    assert txn.on_timer(T0 + 100.0) == []
    assert txn.on_transport_error(T0 + 100.0) == []
    assert txn.state is ClientInviteState.TERMINATED
