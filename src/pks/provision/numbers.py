"""Beside the data path: a customer's DIDs and a provider's routes, written the way an
operator says them, turned into ``dialplan`` rules.

=====================  ========================================  ==========================
spec                   meaning                                   rule(s) written
=====================  ========================================  ==========================
``33202020201``        exactly this number (``+`` allowed)       match_op 0 (equal), pr 10
``33202020200-209``    a range; the second end may be shortened  match_op 1, ``^…$`` regex
``33202020200-33202020209``  (same number of digits at both ends)   pr 20
``+33*``               every number starting with ``+33``        match_op 1 ``^\\+33``,
                                                                 pr 100 − prefix length
``re:^33[1-9]``        a PCRE regex, checked by the router's     match_op 1, pr 100
                       engine (unanchored search, as Kamailio)
``glob:3320*``         a shell pattern (Kamailio fnmatch)        match_op 2, pr 100
=====================  ========================================  ==========================

Ranges are compiled to an equivalent regex rather than expanded into one rule per number, so
a block of 10 000 DIDs is one or a few rows, not 10 000: the classic digit-range
decomposition (``33202020200-33202020349`` → ``3320202020[0-9]|332020202[1-3][0-9]|…``),
packed into as few ``^(?:…|…)$`` regexes as fit the 64 characters of ``match_exp``. Longer
prefixes get a lower ``pr`` so that ``+331*`` is tried before ``+33*``; a rule's ``pr`` can
be given explicitly. ``match_len`` is always 0 (any length).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pks.route.backtrack import backtracking_risk
from pks.route.lookup import MATCH_EQUAL, MATCH_FNMATCH, MATCH_REGEX
from pks.route.regex import PcreError, compile_pcre

__all__ = ["NumberRule", "parse_number", "range_alternatives"]

MAX_MATCH_EXP = 64
_NUMBER = re.compile(r"\+?[0-9*#]+", re.ASCII)
_RANGE = re.compile(r"(\+?)([0-9]+)\s*(?:-|\.\.)\s*(\+?)([0-9]+)", re.ASCII)
_PREFIX = re.compile(r"(\+?[0-9*#]*[0-9#])\*", re.ASCII)
SYNTAX = (
    "write an exact number (33202020201), a range (33202020200-33202020209), a prefix"
    " (+33*), re:REGEX or glob:PATTERN"
)


@dataclass(frozen=True, slots=True)
class NumberRule:
    """One dialplan rule to write: match_op, match_exp and pr (match_len is 0)."""

    match_op: int
    match_exp: str
    pr: int


def parse_number(spec: str, pr: int | None = None) -> list[NumberRule]:
    """An operator's number spec → dialplan rules; ValueError with the reason."""
    text = spec.strip()
    rules = _rules(text)
    for rule in rules:
        if len(rule.match_exp) > MAX_MATCH_EXP:
            raise ValueError(f"{spec!r}: {rule.match_exp!r} is longer than 64 characters")
        if rule.match_op == MATCH_REGEX:
            try:
                compiled = compile_pcre(rule.match_exp)
            except PcreError as exc:
                raise ValueError(f"{spec!r}: regex does not compile: {exc}") from None
            risk = None if compiled.prefix_only else backtracking_risk(compiled.pattern)
            if risk is not None:
                raise ValueError(f"{spec!r}: regex {risk}")
    if pr is not None:
        rules = [NumberRule(r.match_op, r.match_exp, pr) for r in rules]
    return rules


def _rules(text: str) -> list[NumberRule]:
    if text.startswith("re:") and text[3:]:
        return [NumberRule(MATCH_REGEX, text[3:], 100)]
    if text.startswith("glob:") and text[5:]:
        return [NumberRule(MATCH_FNMATCH, text[5:], 100)]
    prefix = _PREFIX.fullmatch(text)  # before exact numbers: a trailing * means "prefix"
    if prefix is not None:
        body = prefix.group(1)
        return [NumberRule(MATCH_REGEX, "^" + _escape(body), max(30, 100 - len(body)))]
    if _NUMBER.fullmatch(text):
        return [NumberRule(MATCH_EQUAL, text, 10)]
    span = _RANGE.fullmatch(text)
    if span is not None:
        plus, low, plus2, high = span.groups()
        if plus2 and not plus:
            raise ValueError(f"{text!r}: both ends of a range start with '+', or none")
        if len(high) < len(low):  # 33202020200-209: the second end repeats the first's head
            high = low[: len(low) - len(high)] + high
        if len(high) != len(low):
            raise ValueError(f"{text!r}: both ends of a range need the same number of digits")
        if high < low:
            raise ValueError(f"{text!r}: the range ends before it starts")
        lead = "\\+" if plus else ""
        return [NumberRule(MATCH_REGEX, e, 20) for e in _pack(lead, range_alternatives(low, high))]
    raise ValueError(f"{text!r} is not a number spec: {SYNTAX}")


def _escape(body: str) -> str:
    return "".join("\\" + c if not c.isalnum() else c for c in body)


def _digits(count: int) -> str:
    return "" if count == 0 else "[0-9]" if count == 1 else f"[0-9]{{{count}}}"


def _span(low: str, high: str) -> str:
    return low if low == high else f"[{low}-{high}]"


def range_alternatives(low: str, high: str) -> list[str]:
    """Regex bodies (digits and classes, no anchors) matching exactly ``low``..``high``.

    Both are digit strings of the same length with ``low <= high``.
    """
    common = 0
    while common < len(low) and low[common] == high[common]:
        common += 1
    head, a, b = low[:common], low[common:], high[common:]
    if not a:
        return [head]
    rest = len(a) - 1
    if a[1:] == "0" * rest and b[1:] == "9" * rest:
        if a[0] == "0" and b[0] == "9":
            return [head + _digits(rest + 1)]
        return [head + _span(a[0], b[0]) + _digits(rest)]
    out: list[str] = []
    first, last = int(a[0]), int(b[0])
    if a[1:] != "0" * rest:
        out += range_alternatives(low, head + a[0] + "9" * rest)
        first += 1
    upper: list[str] = []
    if b[1:] != "9" * rest:
        upper = range_alternatives(head + b[0] + "0" * rest, high)
        last -= 1
    if first <= last:
        out.append(head + _span(str(first), str(last)) + _digits(rest))
    return out + upper


def _pack(lead: str, alternatives: list[str]) -> list[str]:
    """As few ``^…$`` regexes as fit in ``match_exp``, in order."""
    packed: list[list[str]] = []
    for alt in alternatives:
        if packed and len(_join(lead, [*packed[-1], alt])) <= MAX_MATCH_EXP:
            packed[-1].append(alt)
        else:
            packed.append([alt])
    return [_join(lead, group) for group in packed]


def _join(lead: str, group: list[str]) -> str:
    if len(group) == 1:
        return f"^{lead}{group[0]}$"
    return f"^{lead}(?:{'|'.join(group)})$"
