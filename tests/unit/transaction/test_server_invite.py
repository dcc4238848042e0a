"""INVITE server transaction: every arc of RFC 3261 Figure 7 and RFC 6026 Figure 7."""

from __future__ import annotations

import pytest

from pks.transaction import (
    DeliverAck,
    ServerInviteState,
    ServerInviteTransaction,
    Terminated,
    TimedOut,
    Timers,
    Transmit,
    TransportFailed,
)

from .drive import non_transmits, run_timers, transmit_times

TRYING = b"SIP/2.0 100 Trying\r\n\r\n"
RINGING = b"SIP/2.0 180 Ringing\r\n\r\n"
OK = b"SIP/2.0 200 OK\r\n\r\n"
BUSY = b"SIP/2.0 486 Busy Here\r\n\r\n"
T0 = 1000.0


def completed(*, reliable: bool, timers: Timers | None = None) -> ServerInviteTransaction:
    txn = (
        ServerInviteTransaction(reliable=reliable)
        if timers is None
        else ServerInviteTransaction(reliable=reliable, timers=timers)
    )
    assert txn.send_response(486, BUSY, T0) == [Transmit(BUSY)]
    assert txn.state is ServerInviteState.COMPLETED
    return txn


def accepted(*, reliable: bool) -> ServerInviteTransaction:
    txn = ServerInviteTransaction(reliable=reliable)
    txn.send_response(100, TRYING, T0 - 1.0)
    assert txn.send_response(200, OK, T0) == [Transmit(OK)]
    return txn


def test_new_transaction_is_proceeding_with_no_timer() -> None:
    txn = ServerInviteTransaction(reliable=False)
    assert txn.state is ServerInviteState.PROCEEDING
    assert not txn.terminated
    assert txn.next_deadline() is None


def test_retransmission_before_any_response_is_absorbed() -> None:
    txn = ServerInviteTransaction(reliable=False)
    assert txn.on_retransmission(T0) == []


def test_provisionals_are_sent_and_the_last_one_replayed() -> None:
    txn = ServerInviteTransaction(reliable=False)
    assert txn.send_response(100, TRYING, T0) == [Transmit(TRYING)]
    assert txn.on_retransmission(T0 + 0.5) == [Transmit(TRYING)]
    assert txn.send_response(180, RINGING, T0 + 1.0) == [Transmit(RINGING)]
    assert txn.on_retransmission(T0 + 1.5) == [Transmit(RINGING)]
    assert txn.state is ServerInviteState.PROCEEDING
    assert txn.next_deadline() is None


def test_ack_in_proceeding_is_absorbed() -> None:
    txn = ServerInviteTransaction(reliable=False)
    assert txn.on_ack(T0) == []
    assert txn.state is ServerInviteState.PROCEEDING


def test_timer_g_doubles_up_to_t2_until_timer_h_over_udp() -> None:
    txn = completed(reliable=False)
    assert txn.next_deadline() == T0 + 0.5
    log = run_timers(txn, T0 + 100.0)
    expected = [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert transmit_times(log) == [T0 + t for t in expected]
    assert all(effect == Transmit(BUSY) for _, effect in log if isinstance(effect, Transmit))
    # Timer H: no ACK came, the TU is told of the failure.
    assert non_transmits(log) == [(T0 + 32.0, TimedOut()), (T0 + 32.0, Terminated())]
    assert txn.state is ServerInviteState.TERMINATED
    assert txn.next_deadline() is None


def test_timer_g_cap_follows_t2() -> None:
    txn = completed(reliable=False, timers=Timers(t1=0.5, t2=1.0))
    log = run_timers(txn, T0 + 5.0)
    assert transmit_times(log) == [T0 + t for t in (0.5, 1.5, 2.5, 3.5, 4.5)]


def test_no_retransmission_over_reliable_transport_only_timer_h() -> None:
    txn = completed(reliable=True)
    assert txn.next_deadline() == T0 + 32.0
    assert run_timers(txn, T0 + 100.0) == [(T0 + 32.0, TimedOut()), (T0 + 32.0, Terminated())]


def test_retransmission_in_completed_replays_the_final_response() -> None:
    txn = completed(reliable=True)
    assert txn.on_retransmission(T0 + 1.0) == [Transmit(BUSY)]


def test_ack_moves_to_confirmed_for_timer_i_over_udp() -> None:
    txn = completed(reliable=False)
    run_timers(txn, T0 + 1.5)
    assert txn.on_ack(T0 + 2.0) == []
    assert txn.state is ServerInviteState.CONFIRMED
    assert txn.next_deadline() == T0 + 7.0
    # Confirmed absorbs ACK and INVITE retransmissions; G and H are stopped.
    assert txn.on_ack(T0 + 3.0) == []
    assert txn.on_retransmission(T0 + 4.0) == []
    assert run_timers(txn, T0 + 100.0) == [(T0 + 7.0, Terminated())]


def test_ack_over_reliable_transport_terminates_at_once() -> None:
    txn = completed(reliable=True)
    assert txn.on_ack(T0 + 1.0) == [Terminated()]
    assert txn.terminated
    assert txn.next_deadline() is None


def test_non_2xx_after_a_final_response_is_not_sent() -> None:
    txn = completed(reliable=False)
    assert txn.send_response(180, RINGING, T0 + 1.0) == []
    assert txn.send_response(503, b"503", T0 + 1.0) == []
    assert txn.on_retransmission(T0 + 2.0) == [Transmit(BUSY)]


@pytest.mark.parametrize("confirmed", [False, True])
def test_2xx_after_a_failure_is_forwarded_but_not_stored(confirmed: bool) -> None:
    # RFC 3261 §16.7 step 5: a proxy forwards every 2xx to an INVITE.
    txn = completed(reliable=False)
    if confirmed:
        txn.on_ack(T0 + 1.0)
    assert txn.send_response(200, OK, T0 + 2.0) == [Transmit(OK)]
    expected = ServerInviteState.CONFIRMED if confirmed else ServerInviteState.COMPLETED
    assert txn.state is expected
    if not confirmed:
        assert txn.on_retransmission(T0 + 3.0) == [Transmit(BUSY)]


@pytest.mark.parametrize("reliable", [False, True])
def test_2xx_moves_to_accepted_for_timer_l(reliable: bool) -> None:
    txn = accepted(reliable=reliable)
    assert txn.state is ServerInviteState.ACCEPTED
    assert txn.next_deadline() == T0 + 32.0
    # RFC 6026 §8.7: INVITE retransmissions are absorbed, not answered or passed up.
    assert txn.on_retransmission(T0 + 1.0) == []
    # Further 2xx from the TU are sent; anything else is not.
    assert txn.send_response(200, OK, T0 + 2.0) == [Transmit(OK)]
    assert txn.send_response(180, RINGING, T0 + 3.0) == []
    assert txn.send_response(486, BUSY, T0 + 3.0) == []
    # An ACK matching the transaction goes up to the TU.
    assert txn.on_ack(T0 + 4.0) == [DeliverAck()]
    assert txn.state is ServerInviteState.ACCEPTED
    assert run_timers(txn, T0 + 100.0) == [(T0 + 32.0, Terminated())]


def test_transport_error_in_proceeding_informs_tu_only() -> None:
    txn = ServerInviteTransaction(reliable=True)
    assert txn.on_transport_error(T0) == [TransportFailed()]
    assert txn.state is ServerInviteState.PROCEEDING
    assert txn.send_response(180, RINGING, T0 + 1.0) == [Transmit(RINGING)]


def test_transport_error_in_accepted_informs_tu_only() -> None:
    txn = accepted(reliable=True)
    assert txn.on_transport_error(T0 + 2.0) == [TransportFailed()]
    assert txn.state is ServerInviteState.ACCEPTED
    assert txn.next_deadline() == T0 + 32.0


def test_transport_error_in_completed_informs_tu_and_terminates() -> None:
    txn = completed(reliable=False)
    assert txn.on_transport_error(T0 + 1.0) == [TransportFailed(), Terminated()]
    assert txn.terminated
    assert txn.next_deadline() is None


def test_transport_error_in_confirmed_is_ignored() -> None:
    txn = completed(reliable=False)
    txn.on_ack(T0 + 1.0)
    assert txn.on_transport_error(T0 + 2.0) == []
    assert txn.state is ServerInviteState.CONFIRMED


def test_terminated_transaction_absorbs_everything() -> None:
    txn = completed(reliable=True)
    txn.on_ack(T0 + 1.0)
    assert txn.on_retransmission(T0 + 2.0) == []
    for status, data in ((180, RINGING), (200, OK), (486, BUSY)):
        assert txn.send_response(status, data, T0 + 2.0) == []
    assert txn.on_ack(T0 + 3.0) == []
    assert txn.on_timer(T0 + 100.0) == []
    assert txn.on_transport_error(T0 + 100.0) == []
