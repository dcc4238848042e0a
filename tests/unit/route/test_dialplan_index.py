"""The dialplan index gives exactly the full scan's answer, and does not test every rule."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pks.route import DialplanRow, TableRows, build_snapshot, lookup
from pks.route.dialplan_index import IndexedRule, RuleIndex
from pks.route.fnmatch import compile_fnmatch
from pks.route.regex import byte_view, compile_pcre

# Patterns built from pieces that exercise every index path: exact text, anchored literal
# prefixes (with quantified last characters, groups, alternation), unanchored regexes and
# shell patterns with and without a literal prefix.
_DIGITS = st.text(alphabet="0123", min_size=0, max_size=4)
_REGEX = st.one_of(
    st.builds(
        lambda p, t: f"^{p}{t}", _DIGITS, st.sampled_from(["", "$", ".*", "[0-3]+$", "1?", "2*3"])
    ),
    st.builds(lambda p, q: f"^{p}|{q}", _DIGITS, _DIGITS),
    st.builds(lambda p, q: f"^{p}({q}|2)", _DIGITS, _DIGITS),
    st.builds(lambda p: f"^\\+{p}", _DIGITS),
    st.builds(lambda p: f"{p}$", _DIGITS),
    st.sampled_from(["", ".", "^.{3}$", "1{2}", "(?i)^a"]),
)
_GLOB = st.builds(
    lambda p, t: p + t, _DIGITS, st.sampled_from(["", "*", "?", "[12]*", "\\*", "[!0]"])
) | st.builds(lambda p: "*" + p, _DIGITS)
_OPS = st.one_of(
    st.tuples(st.just(0), _DIGITS),
    st.tuples(st.just(1), _REGEX),
    st.tuples(st.just(2), _GLOB),
)
_ROWS = st.lists(
    st.tuples(_OPS, st.integers(0, 3), st.sampled_from([0, 0, 2, 3, 4])), min_size=0, max_size=25
).map(
    lambda items: tuple(
        DialplanRow(i + 1, 1, pr, op, exp, length, "", "", str(i + 1))
        for i, ((op, exp), pr, length) in enumerate(items)
    )
)
_INPUTS = st.lists(st.text(alphabet="0123+a*", min_size=0, max_size=5), min_size=1, max_size=10)


def reference(rows: tuple[DialplanRow, ...], user: str) -> int | None:
    """§2.3 written as the plain full scan: length-specific rules, then length 0, by (pr, id)."""
    if not user:
        return None
    subject = byte_view(user)
    ordered = sorted(rows, key=lambda r: (r.pr, r.id))
    for group in (
        [r for r in ordered if r.match_len == len(subject) and r.match_len],
        [r for r in ordered if r.match_len == 0],
    ):
        for row in group:
            if row.match_op == 0:
                hit = row.match_exp == subject
            elif row.match_op == 1:
                hit = compile_pcre(row.match_exp).pattern.search(subject) is not None
            else:
                hit = compile_fnmatch(row.match_exp).pattern.fullmatch(subject) is not None
            if hit:
                return row.id
    return None


@settings(max_examples=300, deadline=None)
@given(rows=_ROWS, users=_INPUTS)
def test_index_equals_full_scan(rows: tuple[DialplanRow, ...], users: list[str]) -> None:
    snap = build_snapshot(TableRows(dialplan=rows))
    for user in users:
        match = lookup(snap, 1, user)
        assert (None if match is None else match.rule_id) == reference(rows, user), user


class Counting:
    """A rule test that records how often it ran."""

    calls = 0

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def __call__(self, subject: str) -> bool:
        Counting.calls += 1
        return subject.startswith(self.prefix)


def test_large_exact_and_prefix_tables_test_only_candidates() -> None:
    rules: list[IndexedRule[str]] = []
    for n in range(50_000):
        rules.append(IndexedRule(f"exact{n}", None, exact=f"33{n:09d}"))
        prefix = f"44{n:06d}"
        rules.append(IndexedRule(f"prefix{n}", Counting(prefix), prefix=prefix))
    rules.append(IndexedRule("scan", Counting("")))
    index = RuleIndex(rules)
    Counting.calls = 0
    assert index.find("33000012345") == "exact12345"
    assert Counting.calls == 0  # the exact hit outranks the one scanned rule
    assert index.find("44012345999") == "prefix12345"
    assert Counting.calls == 1  # one bucket probed, one test run
    assert index.find("55") == "scan"
    assert Counting.calls == 2


def test_rank_order_is_kept_across_buckets() -> None:
    index = RuleIndex(
        [
            IndexedRule("late-exact", None, exact="123"),
            IndexedRule("short", Counting("1"), prefix="1"),
            IndexedRule("long", Counting("12"), prefix="12"),
        ]
    )
    assert index.find("123") == "late-exact"
    index = RuleIndex(
        [
            IndexedRule("long", Counting("12"), prefix="12"),
            IndexedRule("short", Counting("1"), prefix="1"),
            IndexedRule("exact", None, exact="123"),
        ]
    )
    assert index.find("123") == "long"
    assert index.find("13") == "short"
