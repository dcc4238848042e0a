"""PCRE 8 (Kamailio dialplan, no options, bytes) → Python re: acceptance, meaning, prefix.

The expected values below were checked against libpcre 8.39 (Debian's libpcre3, the library
Kamailio 5.6's dialplan module links); ``test_table_agrees_with_libpcre`` re-checks them
whenever that library is installed (CI installs it with the kamailio package).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

import pytest

from pks.route.regex import PcreError, byte_view, compile_pcre, text_view

# (pattern, subject, expected groups of the first match — None = no match)
MEANING: list[tuple[str, str, list[str | None] | None]] = [
    (r"^\+33[1-9][0-9]+$", "+33612345678", ["+33612345678"]),
    (r"^\+33[1-9][0-9]+$", "+33012345678", None),
    (r"^\+33[1-9][0-9]+$", "+33612345678\n", ["+33612345678"]),  # $ before a final \n
    ("123", "91234", ["123"]),  # unanchored search
    ("^a{,3}$", "a{,3}", ["a{,3}"]),  # {,n} is a literal in PCRE 8
    ("^a{,3}$", "aa", None),
    ("^x{1,2,3}$", "x{1,2,3}", ["x{1,2,3}"]),
    ("^a{1$", "a{1", ["a{1"]),
    ("a(?i)b|c", "C", ["C"]),  # (?i) runs to the end of the group, across '|'
    ("a(?i)b|c", "aB", ["aB"]),
    ("(a(?i)b|c)d", "Cd", ["Cd", "C"]),
    ("(a(?i)b|c)d", "cD", None),
    ("^[[:digit:]]+$", "12", ["12"]),
    ("^[[:^digit:]x]$", "a", ["a"]),
    ("^[[:word:]]$", "_", ["_"]),
    ("[\\d-z]", "-", ["-"]),
    ("(?<n>a)\\k<n>", "aa", ["aa", "a"]),
    ("(?'n'a)\\k{n}", "aa", ["aa", "a"]),
    ("(a)\\g{-1}", "aa", ["aa", "a"]),
    ("^\\x4$", "\x04", ["\x04"]),
    ("^\\xg$", "\x00g", ["\x00g"]),
    ("^\\x{41}$", "A", ["A"]),
    ("^\\o{101}$", "A", ["A"]),
    ("^\\101$", "A", ["A"]),
    ("^\\8$", "8", ["8"]),
    ("^\\18$", "\x018", ["\x018"]),
    ("^\\cA$", "\x01", ["\x01"]),
    ("^\\e$", "\x1b", ["\x1b"]),
    ("^\\i\\j\\m$", "ijm", ["ijm"]),  # unknown letter escapes are literals in PCRE 8
    ("^\\Qa.b+\\E+$", "a.b++", ["a.b++"]),
    ("^a\\E$", "a", ["a"]),
    ("a\\z", "a\n", None),
    ("a\\Z", "a\n", ["a"]),
    ("^\\N+$", "ab", ["ab"]),
    ("\\N", "\n", None),
    ("^\\h$", "\udca0", ["\udca0"]),  # the byte 0xa0 (not valid UTF-8 on its own)
    ("^\\h$", "\xa0", None),  # U+00A0 is two bytes in UTF-8
    ("^\\v$", "\udc85", ["\udc85"]),
    ("^\\v$", "\n", ["\n"]),
    ("^\\s$", "\x0b", ["\x0b"]),
    ("^\\R$", "\r\n", ["\r\n"]),
    ("^[\\R\\B]+$", "RB", ["RB"]),
    ("^\\w$", "é", None),  # ASCII classes, bytes
    ("^.$", "é", None),  # é is two bytes
    ("^..$", "é", ["é"]),
    ("(?i)^é$", "É", None),  # no case folding outside ASCII
    ("^é$", "é", ["é"]),
    ("(*FAIL)|a", "a", ["a"]),
    ("a(?#c)*", "aaa", ["aaa"]),
    ("\\B", "", [""]),  # Python's own \B fails on ''
    ("(?m)^a", "b\na", ["a"]),
    ("\\n(?m)^", "a\n", None),  # multiline ^ never after a final newline
    ("(a)?(?(1)b|c)", "c", ["c", None]),
    ("(?<n>a)?(?(<n>)b|c)", "ab", ["ab", "a"]),
    ("^[]a]+$", "]a", ["]a"]),
    ("^[^]a]$", "b", ["b"]),
    ("^(?>a+)b", "aab", ["aab"]),
    ("^a++b", "aab", ["aab"]),
    ("", "x", [""]),  # the empty regex matches everything
]

# (pattern, message start) for patterns libpcre 8 rejects
REJECTED: list[tuple[str, str]] = [
    ("+33[1-9][0-9]+$", "nothing to repeat at position 0"),
    ("a{70000}", "number too big in {} quantifier"),
    ("a{3,2}", "numbers out of order in {} quantifier"),
    ("[[.a.]]", "POSIX collating elements are not supported"),
    ("[[:foo:]]", "unknown POSIX class name"),
    ("[:digit:]", "POSIX named classes are supported only within a class"),
    ("[a-\\d]", "invalid range in character class"),
    ("[z-a]", "range out of order in character class"),
    ("\\u0041", "PCRE does not support"),
    ("\\N{x}", "PCRE does not support"),
    ("(?a)x", "unrecognized character after (? or (?-"),
    ("\\", "\\ at end of pattern"),
    ("[a", "missing terminating ] for character class"),
    ("a)", "unmatched parentheses"),
    ("(a", "missing )"),
    ("\\c", "\\c at end of pattern"),
    ("\\x{100}", "character value in \\x{} or \\o{} is too large"),
    ("\\x{zz}", "non-hex character in \\x{}"),
    ("\\400", "character value"),
    ("\\o", "missing opening brace after \\o"),
    ("[\\N]", "\\N is not supported in a class"),
    ("\\Z+", "nothing to repeat"),
    ("\\s+(?#x)+", "nothing to repeat"),
    ("a**", "multiple repeat"),
    ("(a)\\2", "invalid group reference 2"),
    ("\\g{0}", "a numbered reference must not be zero"),
]

# accepted by libpcre 8 but without a Python equivalent: rejected with a clear message
UNSUPPORTED: list[tuple[str, str]] = [
    ("(?x) a", "option (?x) is not supported"),
    ("(?U)a*", "option (?U) is not supported"),
    ("(?|a)", "branch reset groups"),
    ("(?1)(a)", "recursion and subroutine calls are not supported"),
    ("(*UTF8)a", "(*VERB) and (*OPTION) items are not supported"),
    ("\\p{L}", "\\p and \\P (Unicode properties) are not supported"),
    ("a\\Kb", "\\K is not supported"),
    ("(?(R)a)", "only (?(n)…) and (?(name)…) conditions are supported"),
    ("(?<=a|bc)x", "look-behind requires fixed-width pattern"),
    ("(a\\1)", "cannot refer to an open group"),
]


def groups(pattern: str, subject: str) -> list[str | None] | None:
    match = compile_pcre(pattern).pattern.search(byte_view(subject))
    if match is None:
        return None
    values = [match.group(0), *match.groups()]
    return [None if v is None else text_view(v) for v in values]


@pytest.mark.parametrize(("pattern", "subject", "expected"), MEANING)
def test_meaning(pattern: str, subject: str, expected: list[str | None] | None) -> None:
    assert groups(pattern, subject) == expected


@pytest.mark.parametrize(("pattern", "message"), REJECTED + UNSUPPORTED)
def test_rejected(pattern: str, message: str) -> None:
    with pytest.raises(PcreError) as err:
        compile_pcre(pattern)
    assert str(err.value).startswith(message)


def test_error_position_is_in_the_original_pattern() -> None:
    with pytest.raises(PcreError) as err:
        compile_pcre("^\\Qab\\E(c")
    assert err.value.position == 9
    with pytest.raises(PcreError) as err:
        compile_pcre("[[:digit:]]a**")
    assert err.value.position == 13


@pytest.mark.parametrize(
    ("pattern", "prefix"),
    [
        (r"^\+33[1-9]", "+33"),
        ("^3320202020[0-9]$", "3320202020"),
        ("^123$", "123"),
        ("^12?3", "1"),  # a quantified character is not part of the prefix
        ("^12{2}", "1"),
        ("^12*", "1"),
        ("^\\Q+33\\E", "+33"),
        ("^\\x41B", "AB"),
        ("^12(3|4)", "12"),
        ("^12|34", ""),  # top-level alternation: no prefix
        ("^1(2|3)|4", ""),
        ("123", ""),  # unanchored
        ("(?i)^abc", ""),
        ("^ab(?i)c", "ab"),
        ("^.", ""),
        ("^é", "é".encode().decode("latin-1")),
    ],
)
def test_literal_prefix(pattern: str, prefix: str) -> None:
    assert compile_pcre(pattern).prefix == prefix


@pytest.mark.parametrize(
    ("pattern", "prefix_only"),
    [
        (r"^\+33", True),
        ("^\\Q+33\\E", True),
        ("^\\x41B", True),
        ("^é", True),
        ("^123$", False),  # '$': the subject must also end there
        ("^12?", False),
        ("^12(3)", False),
        ("^12|34", False),
        ("^1.", False),
        ("^ab(?i)c", False),
        ("(?i)^abc", False),
        ("123", False),
        ("^", False),  # no prefix to index by
    ],
)
def test_prefix_only(pattern: str, prefix_only: bool) -> None:
    compiled = compile_pcre(pattern)
    assert compiled.prefix_only is prefix_only
    if prefix_only:  # then starting with the prefix is matching
        for subject in (compiled.prefix, compiled.prefix + "9\n", compiled.prefix[:-1], "x"):
            hit = compiled.pattern.search(subject) is not None
            assert hit is subject.startswith(compiled.prefix), subject


def test_groups_are_counted() -> None:
    assert compile_pcre("^(0|\\+33)(?:x)(?<rest>.*)$").groups == 2


def test_byte_view_round_trip() -> None:
    assert byte_view("+33612") == "+33612"
    assert byte_view("é") == "\xc3\xa9"
    assert text_view(byte_view("aé€")) == "aé€"


# -- oracle: libpcre 8 itself ------------------------------------------------------------


def _libpcre() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("pcre") or "libpcre.so.3"
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        return None
    lib.pcre_compile.restype = ctypes.c_void_p
    lib.pcre_compile.argtypes = [
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.POINTER(ctypes.c_char_p),
        ctypes.POINTER(ctypes.c_int),
        ctypes.c_void_p,
    ]
    lib.pcre_exec.argtypes = [
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.POINTER(ctypes.c_int),
        ctypes.c_int,
    ]
    return lib


def _pcre_search(lib: ctypes.CDLL, pattern: str, subject: str) -> object:
    """libpcre's verdict: 'error', None (no match) or the list of groups."""
    error = ctypes.c_char_p()
    offset = ctypes.c_int()
    source = pattern.encode("utf-8", "surrogateescape")
    code = lib.pcre_compile(source, 0, ctypes.byref(error), ctypes.byref(offset), None)
    if not code:
        return "error"
    ovector = (ctypes.c_int * 90)()
    data = subject.encode("utf-8", "surrogateescape")
    count = lib.pcre_exec(code, None, data, len(data), 0, 0, ovector, 90)
    if count < 0:
        return None
    spans = [(ovector[2 * i], ovector[2 * i + 1]) for i in range(count)]
    return [data[s:e].decode("utf-8", "surrogateescape") if s >= 0 else None for s, e in spans]


@pytest.fixture(scope="module")
def libpcre() -> ctypes.CDLL:
    lib = _libpcre()
    if lib is None:
        if os.environ.get("CI") == "true":
            pytest.fail("libpcre 8 (Debian libpcre3, a kamailio dependency) is not installed")
        pytest.skip("libpcre 8 not installed (apt-get install libpcre3): oracle check skipped")
    return lib


def test_table_agrees_with_libpcre(libpcre: ctypes.CDLL) -> None:
    for pattern, subject, expected in MEANING:
        found = _pcre_search(libpcre, pattern, subject)
        if isinstance(found, list) and expected is not None:
            found = found + [None] * (len(expected) - len(found))  # PCRE drops trailing unset
        assert found == expected, (pattern, subject)
    for pattern, _ in REJECTED:
        assert _pcre_search(libpcre, pattern, "") == "error", pattern
    for pattern, _ in UNSUPPORTED:
        assert _pcre_search(libpcre, pattern, "") != "error", pattern
