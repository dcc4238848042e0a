"""TransactionTable (lookup and deadline heap) and the §17.1.3 / §17.2.3 key helpers."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pks.transaction import TransactionTable, client_key, server_key


def test_add_get_remove_len_contains() -> None:
    table: TransactionTable[str, int] = TransactionTable()
    assert len(table) == 0
    table.add("a", 1)
    table.add("b", 2)
    assert len(table) == 2
    assert "a" in table
    assert table.get("a") == 1
    assert table.get("zz") is None
    assert table.remove("a") == 1
    assert table.remove("a") is None
    assert "a" not in table
    assert len(table) == 1


def test_adding_a_key_twice_is_an_error() -> None:
    table: TransactionTable[str, int] = TransactionTable()
    table.add("a", 1)
    with pytest.raises(ValueError, match="already exists"):
        table.add("a", 2)
    assert table.get("a") == 1


def test_due_returns_keys_in_deadline_order_each_once() -> None:
    table: TransactionTable[str, int] = TransactionTable()
    table.schedule("a", 5.0)
    table.schedule("b", 3.0)
    table.schedule("c", 4.0)
    assert table.next_deadline() == 3.0
    assert table.due(2.9) == []
    assert table.due(4.0) == ["b", "c"]
    assert table.due(4.0) == []
    assert table.next_deadline() == 5.0
    assert table.due(100.0) == ["a"]
    assert table.next_deadline() is None


def test_equal_deadlines_come_out_in_scheduling_order() -> None:
    table: TransactionTable[str, int] = TransactionTable()
    for key in ("x", "a", "m"):
        table.schedule(key, 1.0)
    assert table.due(1.0) == ["x", "a", "m"]


def test_rescheduling_earlier_skips_the_stale_entry() -> None:
    table: TransactionTable[str, int] = TransactionTable()
    table.schedule("a", 5.0)
    table.schedule("a", 2.0)
    assert table.next_deadline() == 2.0
    assert table.due(2.0) == ["a"]
    assert table.due(10.0) == []
    assert table.next_deadline() is None


def test_rescheduling_later_skips_the_stale_entry() -> None:
    table: TransactionTable[str, int] = TransactionTable()
    table.schedule("a", 2.0)
    table.schedule("b", 3.0)
    table.schedule("a", 6.0)
    assert table.due(5.0) == ["b"]
    assert table.next_deadline() == 6.0
    assert table.due(6.0) == ["a"]


def test_back_and_forth_rescheduling_yields_the_key_once() -> None:
    table: TransactionTable[str, int] = TransactionTable()
    table.schedule("a", 5.0)
    table.schedule("a", 7.0)
    table.schedule("a", 5.0)
    assert table.due(10.0) == ["a"]


def test_none_and_remove_unschedule() -> None:
    table: TransactionTable[str, int] = TransactionTable()
    table.add("a", 1)
    table.schedule("a", 1.0)
    table.schedule("b", 2.0)
    table.schedule("b", None)
    table.remove("a")
    assert table.next_deadline() is None
    assert table.due(10.0) == []


def test_keys_are_never_compared() -> None:
    # Keys need only be hashable: ties on the deadline must not compare them.
    table: TransactionTable[object, int] = TransactionTable()
    first, second = object(), object()
    table.schedule(first, 1.0)
    table.schedule(second, 1.0)
    assert table.due(1.0) == [first, second]


def test_stale_entries_are_compacted() -> None:
    table: TransactionTable[int, int] = TransactionTable()
    for key in range(10):
        table.schedule(key, 1000.0)
    for step in range(10_000):
        table.schedule(step % 10, 1000.0 + step)
    # Lazy invalidation leaves stale entries; compaction keeps them O(live keys).
    assert len(table._heap) <= 2 * 10 + 64
    assert table.next_deadline() == 1000.0 + 9_990
    assert table.due(1e9) == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]


_ops = st.lists(
    st.tuples(
        st.sampled_from(["schedule", "unschedule", "remove", "due", "peek"]),
        st.integers(0, 5),
        st.integers(0, 20).map(float),
    ),
    max_size=60,
)


@settings(derandomize=True, max_examples=300, deadline=None)
@given(_ops)
def test_heap_matches_a_plain_dict_model(ops: list[tuple[str, int, float]]) -> None:
    table: TransactionTable[int, None] = TransactionTable()
    model: dict[int, float] = {}
    for op, key, value in ops:
        if op == "schedule":
            table.schedule(key, value)
            model[key] = value
        elif op == "unschedule":
            table.schedule(key, None)
            model.pop(key, None)
        elif op == "remove":
            table.add(key, None)
            table.remove(key)
            model.pop(key, None)
        elif op == "due":
            expected = sorted((d, k) for k, d in model.items() if d <= value)
            assert sorted((model[k], k) for k in table.due(value)) == expected
            for _, k in expected:
                del model[k]
        else:
            assert table.next_deadline() == min(model.values(), default=None)
    assert table.next_deadline() == min(model.values(), default=None)


def test_server_key_matches_ack_to_its_invite_and_keeps_cancel_apart() -> None:
    invite = server_key("z9hG4bK776", "pc33.example.com:5060", "INVITE")
    assert server_key("z9hG4bK776", "pc33.example.com:5060", "ACK") == invite
    assert server_key("z9hG4bK776", "pc33.example.com:5060", "CANCEL") != invite
    assert server_key("z9hG4bK776", "pc33.example.com:5061", "INVITE") != invite
    assert server_key("z9hG4bK777", "pc33.example.com:5060", "INVITE") != invite


def test_server_key_compares_branch_and_sent_by_case_insensitively() -> None:
    assert server_key("z9hG4bKAbC", "PC33.Example.COM", "BYE") == server_key(
        "Z9HG4BKabc", "pc33.example.com", "BYE"
    )


def test_methods_are_case_sensitive() -> None:
    assert server_key("z9hG4bK1", "h", "INVITE") != server_key("z9hG4bK1", "h", "invite")
    assert client_key("z9hG4bK1", "BYE") != client_key("z9hG4bK1", "bye")


def test_client_key_matches_ack_to_invite_and_keeps_cancel_apart() -> None:
    invite = client_key("z9hG4bKpks1", "INVITE")
    assert client_key("z9hG4bKPKS1", "INVITE") == invite
    assert client_key("z9hG4bKpks1", "ACK") == invite
    assert client_key("z9hG4bKpks1", "CANCEL") != invite
    assert client_key("z9hG4bKpks2", "INVITE") != invite
