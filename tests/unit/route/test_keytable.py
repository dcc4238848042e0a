"""The dialplan index's tables: the C one answers exactly what the dict-backed one answers."""

from __future__ import annotations

import gc
import weakref

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pks.route.keytable import KeyTable as PureTable

try:  # the optional accelerator (compiled pass only)
    from pks.route._keytable import KeyTable as CTable
except ImportError:
    CTable = None
needs_c = pytest.mark.skipif(CTable is None, reason="accelerator not built")

# short and long (> 19 characters, kept outside the slots) keys, byte-sized and wider
# characters, the empty key, keys that are prefixes of each other
_CHARS = st.sampled_from([*"0123+*a", "é", "ÿ", "\x00", "€", "😀"])
_KEYS = st.text(_CHARS, max_size=4) | st.text(_CHARS, min_size=18, max_size=24)
_LENGTHS = st.integers(-2, 26)


def test_pure_table_is_the_dict_with_a_slice() -> None:
    table = PureTable({"+1": 1, "+33": 2, "": 3})
    assert (table.get("+33612", 3), table.get("+33612", 2), table.get("+1"), len(table)) == (
        2,
        None,
        1,
        3,
    )
    assert table.get("+1", 99) == 1 and table.get("", -1) == 3 and table.get("x", 0) == 3


@needs_c
@settings(max_examples=1000, deadline=None)
@given(
    st.dictionaries(_KEYS, st.integers(), max_size=40),
    st.lists(st.tuples(_KEYS, _LENGTHS), max_size=20),
)
def test_c_table_answers_as_the_dict(
    mapping: dict[str, int], probes: list[tuple[str, int]]
) -> None:
    assert CTable is not None
    pure, c = PureTable(mapping), CTable(mapping)
    assert len(c) == len(pure)
    for key in mapping:  # every key is found, whole and as a prefix of a longer subject
        assert c.get(key) == mapping[key]
        assert c.get(key + "9", len(key)) == mapping[key]
    for subject, length in probes:
        assert c.get(subject, length) == pure.get(subject, length), (subject, length)
        assert c.get(subject) == pure.get(subject)


@needs_c
def test_c_table_holds_a_million_keys_and_misses_cleanly() -> None:
    mapping = {f"+33{200_000_000 + i}": i for i in range(0, 2_000_000, 2)}
    table = CTable(mapping)
    assert len(table) == 1_000_000
    assert table.get("+33200000000") == 0 and table.get("+33201999998") == 1_999_998
    assert table.get("+33200000001") is None and table.get("+332000000009", 12) == 0
    assert table.get("+33200000000", 11) is None


@needs_c
def test_c_table_owns_its_values_and_releases_them() -> None:
    class Value:
        pass

    value = Value()
    ref = weakref.ref(value)
    table = CTable({"+1": value, "x" * 40: value})
    del value
    gc.collect()
    assert ref() is not None and table.get("+1") is ref() and table.get("x" * 40) is ref()
    cycle = CTable({"self": [table]})  # a table reachable from its own value is collected
    cycle.get("self").append(cycle)  # type: ignore[union-attr]
    del table, cycle
    gc.collect()
    assert ref() is None


@needs_c
def test_c_table_refuses_what_a_dict_of_str_would_not_be() -> None:
    assert CTable is not None
    with pytest.raises(TypeError):
        CTable({1: "x"})  # type: ignore[dict-item]
    with pytest.raises(TypeError):
        CTable([("a", 1)])  # type: ignore[arg-type]
    table = CTable({"a": 1})
    with pytest.raises(TypeError):
        table.get(b"a")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        table.get("a", "1")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        table.get()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        table.__init__({"b": 2})  # built once
    assert table.get("a") == 1 and table.get("b") is None
