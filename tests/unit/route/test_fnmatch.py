"""Shell patterns (dialplan match_op 2) against glibc's fnmatch(pattern, subject, 0)."""

from __future__ import annotations

import ctypes
import ctypes.util

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from pks.route.fnmatch import compile_fnmatch
from pks.route.regex import byte_view


def matches(pattern: str, subject: str) -> bool:
    return compile_fnmatch(pattern).pattern.fullmatch(byte_view(subject)) is not None


@pytest.mark.parametrize(
    ("pattern", "subject", "expected"),
    [
        ("45*", "45abc", True),
        ("45*", "345", False),  # whole subject
        ("3320202020?", "33202020201", True),
        ("3320202020?", "3320202020", False),
        ("*", "", True),
        ("?", "", False),
        ("a/b*", "a/b/c", True),  # '/' is not special with flags 0
        (".*", ".x", True),  # nor is a leading '.'
        ("\\*", "*", True),  # backslash escapes
        ("\\*", "x", False),
        ("a\\", "a\\", False),  # a trailing backslash matches nothing
        ("[!0]*", "1", True),
        ("[!0]*", "0", False),
        ("[^0]*", "1", True),  # glibc also negates with '^'
        ("[^0]*", "^", True),
        ("[]a]", "]", True),  # ']' first is a member
        ("[!]a]", "b", True),
        ("[a-c]", "b", True),
        ("[c-a]", "b", False),  # a reversed range is empty
        ("[a-]", "-", True),
        ("[\\]]", "]", True),
        ("[[:digit:]]*", "12", True),
        ("[[:alpha:][:digit:]]", "x", True),
        ("[[:foo:]]", "f", False),  # unknown class: no match
        ("[a[:foo:]]", "a", True),  # members before it still match
        ("[[.a.]]", "a", True),
        ("[[=b=]]", "b", True),
        ("[ab", "[ab", True),  # unterminated: a literal '['
        ("[ab", "a", False),
        ("[a-", "[a-", False),  # glibc: an open range at the end fails
        ("ABC", "abc", False),  # case-sensitive
        ("?", "é", False),  # bytes: é is two
        ("??", "é", True),
    ],
)
def test_glob(pattern: str, subject: str, expected: bool) -> None:
    assert matches(pattern, subject) is expected


@pytest.mark.parametrize(
    ("pattern", "prefix"),
    [("3320*", "3320"), ("33\\*1*", "33*1"), ("*33", ""), ("33?", "33"), ("3[3]", "3"), ("", "")],
)
def test_literal_prefix(pattern: str, prefix: str) -> None:
    assert compile_fnmatch(pattern).prefix == prefix


@pytest.mark.parametrize(
    ("pattern", "prefix_only"),
    [
        ("3320*", True),
        ("33\\*1*", True),
        ("3320", False),
        ("33*1", False),
        ("33?*", False),
        ("33[3]*", False),
        ("33\\*", False),  # an escaped star is a literal
        ("*", False),
        ("", False),
    ],
)
def test_prefix_only(pattern: str, prefix_only: bool) -> None:
    glob = compile_fnmatch(pattern)
    assert glob.prefix_only is prefix_only
    if prefix_only:
        for subject in (glob.prefix, glob.prefix + "9\n", glob.prefix[:-1], "x"):
            hit = glob.pattern.fullmatch(subject) is not None
            assert hit is subject.startswith(glob.prefix), subject


# -- oracle: glibc itself ----------------------------------------------------------------

_LIBC = ctypes.CDLL(ctypes.util.find_library("c"))
_LIBC.fnmatch.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int]

_PIECES = [*"ab1*?[]!^-\\:.", "[:digit:]", "[:alpha:]", "a-z"]
_SUBJECT = st.text(alphabet="ab1-]![^\\:.2zA", max_size=5)


@settings(max_examples=400, deadline=None)
@given(
    pattern=st.lists(st.sampled_from(_PIECES), min_size=1, max_size=7).map("".join),
    subjects=st.lists(_SUBJECT, min_size=1, max_size=8),
)
def test_agrees_with_glibc(pattern: str, subjects: list[str]) -> None:
    # glibc's skip loop and match loop disagree on a range whose end is '[' (e.g. '-[:x:]');
    # such patterns are meaningless and left out.
    assume("-[" not in pattern)
    glob = compile_fnmatch(pattern)
    for subject in subjects:
        expected = _LIBC.fnmatch(pattern.encode(), subject.encode(), 0) == 0
        assert (glob.pattern.fullmatch(subject) is not None) is expected, (pattern, subject)
        if expected:
            assert subject.startswith(glob.prefix)
