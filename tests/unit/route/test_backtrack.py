"""Dialplan patterns whose matching time can blow up are found before they are loaded."""

from __future__ import annotations

import re
import time

import pytest

from pks.route.backtrack import MAX_DEGREE, backtracking_risk
from pks.route.fnmatch import compile_fnmatch
from pks.route.regex import compile_pcre


def risk(pattern: str) -> str | None:
    return backtracking_risk(compile_pcre(pattern).pattern)


EXPONENTIAL = [
    r"^(3+)+$",
    r"^(a*)*$",
    r"^(\d|\d\d)+$",
    r"^(.*a){20}$",
    r"(x+x+)+y",
    r"^(\d+)*\d$",
    r"(a|a)*",
    r"^(.*)*$",
    r"^(?:[0-9]+)+$",
    r"^(\d|\d\d){16}$",  # bounded, still 2^16 ways
    r"^\+?(3+)+$",
    r"(?=(a+)+b)",  # inside a lookahead: run at every position
    r"^(a++)+$",  # possessive and atomic are read as ordinary repeats (never under-refused)
]


@pytest.mark.parametrize("pattern", EXPONENTIAL)
def test_exponential_patterns_are_refused(pattern: str) -> None:
    found = risk(pattern)
    assert found is not None and "exponential" in found


POLYNOMIAL = [
    r".*1.*1.*1",  # three stars and the search for a start: n^4
    r"^.*1.*1.*1.*2$",
    r"^\d*1\d*1\d*1\d*1$",
]


@pytest.mark.parametrize("pattern", POLYNOMIAL)
def test_high_degree_polynomial_patterns_are_refused(pattern: str) -> None:
    found = risk(pattern)
    assert found is not None and "4th power" in found and f"at most {MAX_DEGREE}" in found


ORDINARY = [
    r"^\+?33[1-9][0-9]{8}$",
    r"^(00|\+)49.*",
    r"^1(800|888)\d{7}$",
    r"^(33|44|49|32|41)",
    r"^(?:0033|\+33|0)([1-9])([0-9]{8})$",
    r"[0-9]+",
    r".*",
    r"(.*)",
    r"^33(.*)$",
    r"^\+3320203[0-9]{4}$",
    r"^\+33[1-9][0-9]+$",
    r"^(a|ab)*$",  # {a, ab} splits a text one way only: linear
    r"^\d{1,3}-\d{1,3}-\d{1,3}$",
    r"^\d{2}\d{2}\d{2}\d{2}\d{2}$",
    r"^[0-9]{64}$",
    r"\d{1,65535}",
    r"^(?:\+|00)?(\d{2,3})(\d+)$",
    r"^.*1.*1.*2$",  # degree 3: the most allowed
    r"^(0|\+33)(?:x)(?<rest>.*)$",
    r"^\+1[2-9]\d{2}[2-9]\d{6}$",
]


@pytest.mark.parametrize("pattern", ORDINARY)
def test_ordinary_operator_patterns_are_accepted(pattern: str) -> None:
    assert risk(pattern) is None


def test_fullmatch_does_not_count_a_search() -> None:
    pattern = re.compile(r"\d*1\d*1\d*", re.ASCII)
    assert backtracking_risk(pattern, fullmatch=True) is None
    assert backtracking_risk(pattern) is not None  # searched: every start position, n^4


@pytest.mark.parametrize(
    ("glob", "refused"),
    [("+33*", False), ("*1*1*2", False), ("*1*1*1*2", True), ("33?????????", False)],
)
def test_fnmatch_patterns(glob: str, refused: bool) -> None:
    compiled = compile_fnmatch(glob).pattern
    assert (backtracking_risk(compiled, fullmatch=True) is not None) is refused


def test_a_huge_pattern_is_refused_as_too_complex_quickly() -> None:
    pattern = re.compile("(?:" + "(?:a|)" * 30 + ")+" + "(?:.*a)" * 8, re.ASCII)
    started = time.perf_counter()
    found = backtracking_risk(pattern)
    assert found is not None
    assert time.perf_counter() - started < 5


@pytest.mark.parametrize(("pattern", "digits"), [(r"^(3+)+$", 22), (r"^(\d|\d\d)+$", 28)])
def test_what_is_refused_really_is_slow_and_its_fix_is_not(pattern: str, digits: int) -> None:
    """The reason for the check: a few dozen digits and an x already cost tens of milliseconds,
    growing geometrically per digit (2^n for the first, the Fibonacci numbers for the second);
    the rewritten pattern answers at once. The fix is timed at its best of a few tries, so a
    scheduling pause on a busy CI machine cannot make it look slow."""
    subject = "3" * digits + "x"
    slow = compile_pcre(pattern).pattern
    started = time.perf_counter()
    assert slow.search(subject) is None
    elapsed = time.perf_counter() - started
    fixed = compile_pcre(r"^3+$" if "3" in pattern else r"^\d+$").pattern
    assert risk(fixed.pattern) is None
    best = elapsed
    for _ in range(5):
        started = time.perf_counter()
        assert fixed.search(subject) is None
        best = min(best, time.perf_counter() - started)
    assert best < elapsed / 100


@pytest.mark.parametrize("pattern", ["^" + "a?" * 22 + "x", "(?:a|)" * 14 + "x"])
def test_many_optional_parts_sharing_characters_are_refused(pattern: str) -> None:
    """No loop at all, yet C(22, 11) ways to read eleven a's: 0.45 s for one subject."""
    found = risk(pattern)
    assert found is not None and "ways" in found


def test_a_few_optional_parts_are_accepted() -> None:
    assert risk(r"^\d?\d?\d?\d?\d?\d?\d?\d?\d?\d?$") is None  # one reading of any text
    assert risk("^" + "a?" * 8 + "x") is None  # at most C(8, 4) = 70 ways
