"""POSIX ``fnmatch(pattern, subject, 0)`` → Python regex, for dialplan ``match_op`` 2.

Beside the data path: each shell pattern is translated once when a snapshot is built.
Kamailio calls glibc's ``fnmatch`` with no flags, in the C locale (byte by byte):

* ``*`` any run of bytes, ``?`` any one byte — ``/`` and a leading ``.`` are not special;
* ``\\x`` is a literal ``x``; a trailing lone ``\\`` makes the pattern match nothing;
* ``[…]`` a set: ``[!…]`` and ``[^…]`` negate, a ``]`` right after ``[``/``[!`` is a member,
  ``a-z`` ranges (byte order; reversed = empty), ``\\`` escapes inside, ``[:class:]`` POSIX
  classes (an unknown name makes the set match nothing), ``[.c.]``/``[=c=]`` one character;
  an unterminated ``[`` is a literal ``[``;
* the whole subject must match; case-sensitive.

Python's ``fnmatch.fnmatchcase`` differs (``\\`` is literal there, ``[^…]`` is not negation),
hence this translator. Subjects are matched in their byte view, like PCRE rules
(:func:`pks.route.regex.byte_view`).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from pks.route.regex import byte_view

__all__ = ["CompiledGlob", "compile_fnmatch"]

_CLASSES: dict[str, str] = {
    "alnum": "0-9A-Za-z",
    "alpha": "A-Za-z",
    "blank": "\\x09\\x20",
    "cntrl": "\\x00-\\x1f\\x7f",
    "digit": "0-9",
    "graph": "\\x21-\\x7e",
    "lower": "a-z",
    "print": "\\x20-\\x7e",
    "punct": "\\x21-\\x2f\\x3a-\\x40\\x5b-\\x60\\x7b-\\x7e",
    "space": "\\x09-\\x0d\\x20",
    "upper": "A-Z",
    "xdigit": "0-9A-Fa-f",
}
_NEVER = "(?!)"
_CLASS_NAME = re.compile(r"\[:([a-y]*):\]")
_COLLATING = re.compile(r"\[([.=])(.)\1\]", re.DOTALL)


@dataclass(frozen=True, slots=True)
class CompiledGlob:
    """A compiled shell pattern: ``pattern.fullmatch(byte_view(subject))``.

    ``prefix`` (byte view) is the literal text every matching subject starts with;
    ``prefix_only``: the pattern is that literal and one final ``*``, so a subject matches
    exactly when it starts with ``prefix`` (no need to run the pattern).
    """

    pattern: re.Pattern[str]
    prefix: str
    prefix_only: bool = False


@functools.lru_cache(maxsize=4096)
def compile_fnmatch(pattern: str) -> CompiledGlob:
    """Translate and compile a glibc ``fnmatch`` pattern (never fails: fnmatch has no errors)."""
    src = byte_view(pattern)
    parts: list[str] = []
    prefix: list[str] = []
    literal_so_far = True  # every part so far is a literal character
    i = 0
    while i < len(src):
        c = src[i]
        literal = None
        if c == "*":
            parts.append(".*")
        elif c == "?":
            parts.append(".")
        elif c == "[" and (bracket := _bracket(src, i)) is not None:
            text, i = bracket
            parts.append(text)
            literal_so_far = False
            continue
        elif c == "\\" and i + 1 == len(src):  # "trailing \\ loses"
            parts.append(_NEVER)
        elif c == "\\":
            i += 1
            literal = src[i]
        else:  # including an unterminated '[', which is a literal
            literal = c
        i += 1
        if literal is None:
            literal_so_far = False
            continue
        parts.append(_char(literal))
        if literal_so_far:
            prefix.append(literal)
    compiled = re.compile("".join(parts), re.DOTALL | re.ASCII)
    # literals, then one '*': parts are the prefix's characters and a final '.*'
    prefix_only = bool(prefix) and len(parts) == len(prefix) + 1 and parts[-1] == ".*"
    return CompiledGlob(compiled, "".join(prefix), prefix_only)


def _char(ch: str) -> str:
    if ch.isascii() and ch.isalnum():
        return ch
    return f"\\x{ord(ch):02x}"


def _bracket(src: str, start: int) -> tuple[str, int] | None:  # noqa: C901 - glibc's loop
    """The set at ``src[start] == '['``: (regex, index after it), or None to read a literal '['.

    glibc tests members left to right and stops at the first that matches: members after an
    unknown ``[:class:]`` are never reached (the match fails there).
    """
    i = start + 1
    negate = i < len(src) and src[i] in "!^"
    if negate:
        i += 1
    members: list[str] = []
    never = False
    first = True
    while True:
        if i >= len(src):  # unterminated: a literal '[', unless the scan already failed
            return (_NEVER, i) if never else None
        c = src[i]
        if c == "]" and not first:
            i += 1
            break
        first = False
        if c == "\\":
            if i + 1 >= len(src):
                return _NEVER, len(src)
            low, i = src[i + 1], i + 2
        elif c == "[" and src.startswith(":", i + 1):
            named = _CLASS_NAME.match(src, i)
            if named is not None:
                cls = _CLASSES.get(named.group(1))
                never = never or cls is None
                if not never and cls is not None:
                    members.append(cls)
                i = named.end()
                continue
            low, i = c, i + 1
        elif c == "[" and _COLLATING.match(src, i):
            low, i = src[i + 2], i + 5
        elif c == "[" and src.startswith(".", i + 1):  # malformed [.x.]: the match fails here
            never = True
            end = src.find(".]", i + 2)
            i = len(src) if end < 0 else end + 2
            continue
        else:
            low, i = c, i + 1
        if src.endswith("-") and i == len(src) - 1:  # "[a-" ends the pattern: fails
            return _NEVER, len(src)
        if src.startswith("-", i) and i + 1 < len(src) and src[i + 1] != "]":
            high = src[i + 1]
            i += 2
            if high == "\\":
                if i >= len(src):
                    return _NEVER, len(src)
                high, i = src[i], i + 1
            if ord(high) >= ord(low) and not never:
                members.append(f"{_char(low)}-{_char(high)}")
        elif not never:
            members.append(_char(low))
    if never and negate:
        return _NEVER, i
    return _set(members, negate), i


def _set(members: list[str], negate: bool) -> str:
    if not members:
        return "(?s:.)" if negate else _NEVER
    return f"[{'^' if negate else ''}{''.join(members)}]"
