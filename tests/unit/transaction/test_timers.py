"""Timer values of RFC 3261 Table 4 (and RFC 6026 L/M) and the Timers invariants."""

from __future__ import annotations

import dataclasses

import pytest

from pks.transaction import DEFAULT_TIMERS, Timers


def test_defaults_are_rfc_3261_values() -> None:
    assert (DEFAULT_TIMERS.t1, DEFAULT_TIMERS.t2, DEFAULT_TIMERS.t4) == (0.5, 4.0, 5.0)
    assert Timers() == DEFAULT_TIMERS


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("timer_a", 0.5),
        ("timer_b", 32.0),
        ("timer_e", 0.5),
        ("timer_f", 32.0),
        ("timer_g", 0.5),
        ("timer_h", 32.0),
        ("timer_l", 32.0),
        ("timer_m", 32.0),
    ],
)
def test_transport_independent_timers(name: str, value: float) -> None:
    assert getattr(DEFAULT_TIMERS, name) == value


@pytest.mark.parametrize(
    ("name", "unreliable", "reliable"),
    [
        ("timer_d", 32.0, 0.0),
        ("timer_i", 5.0, 0.0),
        ("timer_j", 32.0, 0.0),
        ("timer_k", 5.0, 0.0),
    ],
)
def test_timers_that_are_zero_over_reliable_transports(
    name: str, unreliable: float, reliable: float
) -> None:
    method = getattr(DEFAULT_TIMERS, name)
    assert method(False) == unreliable
    assert method(True) == reliable


def test_derived_timers_follow_t1_and_t4() -> None:
    timers = Timers(t1=0.25, t2=2.0, t4=3.0)
    assert timers.timer_b == timers.timer_f == timers.timer_h == timers.timer_j(False) == 16.0
    assert timers.timer_l == timers.timer_m == 16.0
    assert timers.timer_i(False) == timers.timer_k(False) == 3.0


def test_timer_d_is_at_least_32_seconds_and_covers_timer_h() -> None:
    assert Timers(t1=0.1, t2=4.0).timer_d(False) == 32.0
    assert Timers(t1=1.0, t2=4.0).timer_d(False) == 64.0


def test_backoff_doubles_up_to_t2() -> None:
    intervals = [DEFAULT_TIMERS.timer_e]
    for _ in range(5):
        intervals.append(DEFAULT_TIMERS.backoff(intervals[-1]))
    assert intervals == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert Timers(t1=0.5, t2=3.0).backoff(2.0) == 3.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"t1": 0.0},
        {"t1": -0.5},
        {"t1": 5.0, "t2": 4.0},
        {"t4": 0.0},
        {"t1": float("nan")},
    ],
)
def test_invalid_values_are_rejected(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="timers need"):
        Timers(**kwargs)


def test_timers_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULT_TIMERS.t1 = 1.0  # type: ignore[misc]
