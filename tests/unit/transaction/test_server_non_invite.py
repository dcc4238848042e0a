"""Non-INVITE server transaction: every arc of RFC 3261 Figure 8."""

from __future__ import annotations

import pytest

from pks.transaction import (
    ServerNonInviteState,
    ServerNonInviteTransaction,
    Terminated,
    Timers,
    Transmit,
    TransportFailed,
)

from .drive import run_timers

TRYING = b"SIP/2.0 100 Trying\r\n\r\n"
OK = b"SIP/2.0 200 OK\r\n\r\n"
NOT_FOUND = b"SIP/2.0 404 Not Found\r\n\r\n"
T0 = 1000.0


def test_new_transaction_is_trying_and_absorbs_retransmissions() -> None:
    txn = ServerNonInviteTransaction(reliable=False)
    assert txn.state is ServerNonInviteState.TRYING
    assert not txn.terminated
    assert txn.next_deadline() is None
    assert txn.on_retransmission(T0) == []


def test_provisional_moves_to_proceeding_and_is_replayed() -> None:
    txn = ServerNonInviteTransaction(reliable=False)
    assert txn.send_response(100, TRYING, T0) == [Transmit(TRYING)]
    assert txn.state is ServerNonInviteState.PROCEEDING
    assert txn.on_retransmission(T0 + 0.5) == [Transmit(TRYING)]
    assert txn.send_response(180, b"180", T0 + 1.0) == [Transmit(b"180")]
    assert txn.on_retransmission(T0 + 1.5) == [Transmit(b"180")]
    assert txn.next_deadline() is None


@pytest.mark.parametrize("from_proceeding", [False, True])
@pytest.mark.parametrize(("status", "data"), [(200, OK), (404, NOT_FOUND)])
def test_final_moves_to_completed_for_timer_j_over_udp(
    from_proceeding: bool, status: int, data: bytes
) -> None:
    txn = ServerNonInviteTransaction(reliable=False)
    if from_proceeding:
        txn.send_response(100, TRYING, T0 - 1.0)
    assert txn.send_response(status, data, T0) == [Transmit(data)]
    assert txn.state is ServerNonInviteState.COMPLETED
    assert txn.next_deadline() == T0 + 32.0
    assert txn.on_retransmission(T0 + 1.0) == [Transmit(data)]
    # RFC 3261 §17.2.2: other responses from the TU are discarded in Completed.
    assert txn.send_response(500, b"500", T0 + 2.0) == []
    assert txn.send_response(100, TRYING, T0 + 2.0) == []
    assert txn.on_retransmission(T0 + 3.0) == [Transmit(data)]
    assert run_timers(txn, T0 + 100.0) == [(T0 + 32.0, Terminated())]
    assert txn.terminated
    assert txn.next_deadline() is None


def test_final_over_reliable_transport_terminates_at_once() -> None:
    txn = ServerNonInviteTransaction(reliable=True)
    assert txn.send_response(200, OK, T0) == [Transmit(OK), Terminated()]
    assert txn.terminated
    assert txn.next_deadline() is None


def test_timer_j_follows_t1() -> None:
    txn = ServerNonInviteTransaction(reliable=False, timers=Timers(t1=0.25))
    txn.send_response(200, OK, T0)
    assert txn.next_deadline() == T0 + 16.0


def test_transport_error_in_trying_is_ignored() -> None:
    txn = ServerNonInviteTransaction(reliable=True)
    assert txn.on_transport_error(T0) == []
    assert txn.state is ServerNonInviteState.TRYING


@pytest.mark.parametrize(("status", "data"), [(100, TRYING), (200, OK)])
def test_transport_error_after_a_response_informs_tu_and_terminates(
    status: int, data: bytes
) -> None:
    txn = ServerNonInviteTransaction(reliable=False)
    txn.send_response(status, data, T0)
    assert txn.on_transport_error(T0 + 0.1) == [TransportFailed(), Terminated()]
    assert txn.terminated
    assert txn.next_deadline() is None


def test_terminated_transaction_absorbs_everything() -> None:
    txn = ServerNonInviteTransaction(reliable=True)
    txn.send_response(200, OK, T0)
    assert txn.on_retransmission(T0 + 1.0) == []
    assert txn.send_response(200, OK, T0 + 1.0) == []
    assert txn.on_timer(T0 + 100.0) == []
    assert txn.on_transport_error(T0 + 100.0) == []
