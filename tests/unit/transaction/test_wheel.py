"""TimerWheel: deadlines rounded up to the grid, earliest arming wins, each due item once."""

from __future__ import annotations

import random

import pytest

from pks.transaction import TICK, TimerWheel


class Item:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


def test_an_item_is_due_at_its_slot_not_before() -> None:
    wheel: TimerWheel[Item] = TimerWheel()
    a = Item("a")
    wheel.arm(a, 1.003)
    assert wheel.next_deadline() == pytest.approx(1.01)
    assert wheel.armed_at(a) == pytest.approx(1.01)
    assert wheel.pop_due(1.003) == []  # the slot's time has not come
    assert wheel.pop_due(1.0101) == [a]
    assert wheel.pop_due(5.0) == []  # once
    assert len(wheel) == 0
    assert wheel.next_deadline() is None


def test_items_come_out_in_slot_order_and_share_a_slot() -> None:
    wheel: TimerWheel[Item] = TimerWheel(tick=0.5)
    a, b, c = Item("a"), Item("b"), Item("c")
    wheel.arm(c, 2.2)
    wheel.arm(a, 0.1)
    wheel.arm(b, 0.4)  # same slot as a (0.5)
    assert len(wheel) == 3
    assert wheel.pop_due(10.0) == [a, b, c]


def test_arming_later_keeps_the_earlier_slot() -> None:
    wheel: TimerWheel[Item] = TimerWheel()
    a = Item("a")
    wheel.arm(a, 1.0)
    wheel.arm(a, 3.0)
    assert wheel.armed_at(a) == pytest.approx(1.0)
    assert wheel.pop_due(1.001) == [a]
    assert wheel.pop_due(4.0) == []  # the later arming was not kept


def test_arming_earlier_moves_the_item_and_the_old_entry_is_ignored() -> None:
    wheel: TimerWheel[Item] = TimerWheel()
    a = Item("a")
    wheel.arm(a, 3.0)
    wheel.arm(a, 1.0)
    assert wheel.pop_due(1.0001) == [a]
    wheel.arm(a, 3.0)  # armed again at the slot its stale entry sits in
    assert wheel.pop_due(3.0001) == [a]  # once, not twice
    assert wheel.pop_due(9.0) == []
    assert wheel.next_deadline() is None


def test_the_wheel_keeps_what_it_holds_alive() -> None:
    wheel: TimerWheel[Item] = TimerWheel()
    wheel.arm(Item("temporary"), 1.0)  # no other reference: id() must not be reused
    others = [Item(str(i)) for i in range(100)]
    for item in others:
        wheel.arm(item, 2.0)
    assert [repr(i) for i in wheel.pop_due(1.0001)] == ["temporary"]
    assert wheel.pop_due(2.0001) == others


def test_bad_tick_is_refused() -> None:
    for tick in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="tick"):
            TimerWheel(tick)


def test_same_answers_as_a_sorted_list_of_deadlines() -> None:
    """Random arming, re-arming and popping against a plain model of the semantics."""
    rng = random.Random(3261)
    wheel: TimerWheel[Item] = TimerWheel()
    items = [Item(str(i)) for i in range(50)]
    model: dict[str, float] = {}  # name -> slot time it is armed at
    now = 0.0
    for _ in range(2000):
        if rng.random() < 0.7:
            item = rng.choice(items)
            when = now + rng.uniform(0.0, 2.0)
            slot_time = -(-when // TICK) * TICK
            if item.name not in model or slot_time < model[item.name] - 1e-9:
                model[item.name] = slot_time
            wheel.arm(item, when)
        else:
            now += rng.uniform(0.0, 0.3)
            due = wheel.pop_due(now)
            expected = {n for n, t in model.items() if t <= now + 1e-9}
            assert {i.name for i in due} == expected
            assert len(due) == len(expected)
            assert [model[i.name] for i in due] == sorted(model[i.name] for i in due)
            for name in expected:
                del model[name]
        assert len(wheel) == len(model)
