"""Step ⑤b: R-URI user part → the first matching ``dialplan`` rule of one dpid (Kamailio
``dp_match``), and the output construction of ``dp_translate`` for the admin RPC.

Load rules (dialplan 5.6 ``build_rule``), any violation rejects the whole table:
``match_op`` ∈ {0 equal, 1 regex, 2 fnmatch}; a regex ``match_exp`` and a non-empty
``subst_exp`` compile as PCRE (:mod:`pks.route.regex`); ``subst_exp`` has at most 10 groups;
``repl_exp`` parses (at most 9 escapes/``$pv`` tokens, well-formed ``$pv``) and references no
``\\N`` beyond ``subst_exp``'s groups. We also reject a negative ``match_len`` and attrs of
255 bytes or more (such rules could never succeed in Kamailio), and a pattern (regex,
fnmatch or ``subst_exp``) whose matching time can blow up on a hostile number
(:mod:`pks.route.backtrack`: ``^(3+)+$`` would let any peer stall the proxy).

Evaluation (§2.3): rules whose ``match_len`` equals the input length (in bytes) first, then
the ``match_len`` 0 rules; within each, ``(pr, id)`` order; the first rule whose
``match_exp`` matches is final. Equal = whole-string compare, regex = unanchored search,
fnmatch = whole-string shell pattern. An empty input never matches; an unknown dpid gives
None. Rules are indexed (:mod:`pks.route.dialplan_index`) so a lookup does not test every
rule, with the same result as the full scan.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pks.route.backtrack import backtracking_risk
from pks.route.dialplan_index import IndexedRule, RuleIndex
from pks.route.fnmatch import compile_fnmatch
from pks.route.regex import PcreError, byte_view, compile_pcre, text_view
from pks.route.rows import DialplanRow

if TYPE_CHECKING:
    from pks.route.snapshot import Snapshot

__all__ = [
    "MATCH_EQUAL",
    "MATCH_FNMATCH",
    "MATCH_REGEX",
    "DialplanMatch",
    "DialplanRule",
    "DialplanTable",
    "TranslateError",
    "compile_dialplan",
    "lookup",
    "translate",
]

MATCH_EQUAL = 0
MATCH_REGEX = 1
MATCH_FNMATCH = 2

MAX_SUBST_GROUPS = 10  # dialplan's MAX_REPLACE_WITH
MAX_REPL_TOKENS = 9  # escapes and $pv tokens in one repl_exp
MAX_OUTPUT = 127  # MAX_PHONE_NB_DIGITS: escape expansion must stay below it
MAX_ATTRS = 255  # DP_MAX_ATTRS_LEN: attrs of this many bytes or more fail every match

_SET_ID = re.compile(r"-?[0-9]+", re.ASCII)
_PV_NAME = re.compile(r"[A-Za-z0-9_]+", re.ASCII)

# repl_exp token kinds (Kamailio's REPLACE_NMATCH / CHAR / URI / SPEC)
_GROUP, _CHAR, _URI, _PV = range(4)
_CHAR_ESCAPES = {"\\": "\\", "n": "\n", "r": "\r", "t": "\t", "$": "$"}


class TranslateError(LookupError):
    """``dialplan.translate`` failed; the message is Kamailio's RPC fault text."""


@dataclass(frozen=True, slots=True)
class DialplanMatch:
    """The result of a successful lookup: the rule and its attrs.

    ``set_id`` is ``attrs`` read as an integer dispatcher set id, None when it is not one.
    The index holds these (not the rules): a lookup in a million rules reads one object less.
    """

    dpid: int
    rule_id: int
    attrs: str
    set_id: int | None
    rule: DialplanRule = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class _Token:
    offset: int
    size: int
    kind: int
    value: str = ""
    group: int = 0


@dataclass(frozen=True, slots=True, eq=False)
class DialplanRule:
    """One compiled ``dialplan`` row; the first nine fields are the row as loaded."""

    id: int
    dpid: int
    pr: int
    match_op: int
    match_exp: str
    match_len: int
    subst_exp: str
    repl_exp: str
    attrs: str
    subst: re.Pattern[str] | None = field(repr=False)
    repl: tuple[_Token, ...] = field(repr=False)


@dataclass(frozen=True, slots=True)
class _Dpid:
    by_len: dict[int, RuleIndex[DialplanMatch]]
    any_len: RuleIndex[DialplanMatch] | None
    rules: tuple[DialplanRule, ...]  # evaluation order, as dialplan.dump prints it


@dataclass(frozen=True, slots=True)
class DialplanTable:
    """The compiled ``dialplan`` table, by dpid."""

    dpids: dict[int, _Dpid]

    def rules(self, dpid: int) -> tuple[DialplanRule, ...] | None:
        """A dpid's rules in evaluation order (length-specific ascending, then length 0)."""
        entry = self.dpids.get(dpid)
        return None if entry is None else entry.rules

    @property
    def rule_count(self) -> int:
        return sum(len(entry.rules) for entry in self.dpids.values())


def compile_dialplan(rows: Iterable[DialplanRow]) -> tuple[DialplanTable, list[str]]:
    """Validate, compile and index ``dialplan`` rows; returns the table and the errors."""
    errors: list[str] = []
    groups: dict[int, dict[int, list[IndexedRule[DialplanMatch]]]] = {}
    for row in sorted(rows, key=lambda r: (r.pr, r.id)):
        compiled = _compile_rule(row, errors)
        if compiled is not None:
            groups.setdefault(row.dpid, {}).setdefault(row.match_len, []).append(compiled)
    dpids: dict[int, _Dpid] = {}
    for dpid, by_len in groups.items():
        lengths = sorted(length for length in by_len if length)
        ordered = [entry.item.rule for length in lengths for entry in by_len[length]]
        ordered += [entry.item.rule for entry in by_len.get(0, [])]
        dpids[dpid] = _Dpid(
            by_len={length: _index(by_len[length]) for length in lengths},
            any_len=_index(by_len[0]) if 0 in by_len else None,
            rules=tuple(ordered),
        )
    return DialplanTable(dpids), errors


def lookup(snapshot: Snapshot, dpid: int, user: str) -> DialplanMatch | None:
    """``dp_match(dpid, user)``: the first matching rule's result, or None."""
    return _find(snapshot, dpid, user)


def translate(snapshot: Snapshot, dpid: int, text: str) -> tuple[str, str]:
    """``dialplan.translate dpid text`` → (output, attrs); raises :class:`TranslateError`.

    The output follows §2.4: empty ``repl_exp`` → ''; a ``subst_exp`` that does not match →
    failure (later rules are not tried); otherwise ``repl_exp`` verbatim, or with its
    escapes expanded when ``subst_exp`` is set. ``$pv`` and ``\\u`` stay literal (no message).
    """
    if dpid not in snapshot.dialplan.dpids:
        raise TranslateError("Dialplan ID not matched")
    if not text:
        raise TranslateError("Empty input parameter")
    match = _find(snapshot, dpid, text)
    output = None if match is None else _build_output(match.rule, byte_view(text))
    if match is None or output is None:
        raise TranslateError("No translation")
    return text_view(output), match.attrs


def _find(snapshot: Snapshot, dpid: int, user: str) -> DialplanMatch | None:
    entry = snapshot.dialplan.dpids.get(dpid)
    if entry is None or not user:
        return None
    subject = user if user.isascii() else byte_view(user)
    index = entry.by_len.get(len(subject))
    if index is not None:
        match = index.find(subject)
        if match is not None:
            return match
    return None if entry.any_len is None else entry.any_len.find(subject)


def _index(rules: list[IndexedRule[DialplanMatch]]) -> RuleIndex[DialplanMatch]:
    return RuleIndex(rule for rule in rules if rule.exact != "")  # '' never equals an input


def _compile_rule(  # noqa: C901 - one check per Kamailio load rule
    row: DialplanRow, errors: list[str]
) -> IndexedRule[DialplanMatch] | None:
    where = f"dialplan id {row.id}"
    before = len(errors)
    if row.match_op not in (MATCH_EQUAL, MATCH_REGEX, MATCH_FNMATCH):
        errors.append(
            f"{where}: match_op {row.match_op} is not 0 (equal), 1 (regex) or 2 (fnmatch)"
        )
    if row.match_len < 0:
        errors.append(f"{where}: match_len {row.match_len} is negative")
    test = None
    exact = None
    prefix = ""
    if row.match_op == MATCH_REGEX:
        try:
            compiled = compile_pcre(row.match_exp)
            prefix = compiled.prefix
            test = None if compiled.prefix_only else compiled.pattern.search
        except PcreError as exc:
            errors.append(f"{where}: match_exp {row.match_exp!r} does not compile: {exc}")
        else:
            risk = None if test is None else backtracking_risk(compiled.pattern)
            if risk is not None:
                errors.append(f"{where}: match_exp {row.match_exp!r} {risk}")
    elif row.match_op == MATCH_FNMATCH:
        glob = compile_fnmatch(row.match_exp)
        prefix = glob.prefix
        test = None if glob.prefix_only else glob.pattern.fullmatch
        risk = None if test is None else backtracking_risk(glob.pattern, fullmatch=True)
        if risk is not None:
            errors.append(f"{where}: match_exp {row.match_exp!r} (fnmatch) {risk}")
    else:
        exact = byte_view(row.match_exp)
    subst = None
    groups = 0
    if row.subst_exp:
        try:
            compiled_subst = compile_pcre(row.subst_exp)
            subst, groups = compiled_subst.pattern, compiled_subst.groups
        except PcreError as exc:
            errors.append(f"{where}: subst_exp {row.subst_exp!r} does not compile: {exc}")
        else:  # run on the caller's number too (dialplan.translate; Kamailio's dp_translate)
            risk = backtracking_risk(subst)
            if risk is not None:
                errors.append(f"{where}: subst_exp {row.subst_exp!r} {risk}")
        if groups > MAX_SUBST_GROUPS:
            errors.append(
                f"{where}: subst_exp {row.subst_exp!r} has {groups} groups"
                f" (at most {MAX_SUBST_GROUPS})"
            )
    repl: tuple[_Token, ...] = ()
    try:
        repl = _parse_repl(byte_view(row.repl_exp))
    except ValueError as exc:
        errors.append(f"{where}: repl_exp {row.repl_exp!r} is invalid: {exc}")
    highest = max((t.group for t in repl if t.kind == _GROUP), default=0)
    if highest > groups:
        errors.append(
            f"{where}: repl_exp {row.repl_exp!r} refers to \\{highest} but subst_exp"
            f" {row.subst_exp!r} has {groups} group{'' if groups == 1 else 's'}"
        )
    if len(byte_view(row.attrs)) >= MAX_ATTRS:
        errors.append(f"{where}: attrs is {len(byte_view(row.attrs))} bytes (at most 254)")
    if len(errors) > before:
        return None
    set_id = int(row.attrs) if _SET_ID.fullmatch(row.attrs) else None
    rule = DialplanRule(
        id=row.id,
        dpid=row.dpid,
        pr=row.pr,
        match_op=row.match_op,
        match_exp=row.match_exp,
        match_len=row.match_len,
        subst_exp=row.subst_exp,
        repl_exp=row.repl_exp,
        attrs=row.attrs,
        subst=subst,
        repl=repl,
    )
    match = DialplanMatch(row.dpid, row.id, row.attrs, set_id, rule)
    return IndexedRule(match, test, exact, prefix)


def _parse_repl(text: str) -> tuple[_Token, ...]:
    """Kamailio ``parse_repl`` without separator: the escapes and ``$pv`` tokens of text."""
    tokens: list[_Token] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt.isdigit() and nxt.isascii():
                tokens.append(_Token(i, 2, _GROUP, group=int(nxt)))
            elif nxt == "u":
                tokens.append(_Token(i, 2, _URI))
            else:
                tokens.append(_Token(i, 2, _CHAR, _CHAR_ESCAPES.get(nxt, nxt)))
            i += 2
        elif c == "$":
            end = _pv_end(text, i)
            tokens.append(_Token(i, end - i, _PV))
            i = end
        else:
            i += 1
        if len(tokens) > MAX_REPL_TOKENS:
            raise ValueError(f"more than {MAX_REPL_TOKENS} escapes and $pv tokens")
    return tuple(tokens)


def _pv_end(text: str, start: int) -> int:
    """End of the pseudo-variable spec at ``text[start] == '$'`` (``$name``, ``$name(x)``,
    ``$name[i]``, ``$(…)``); raises ValueError for a malformed one."""
    i = start + 1
    if text.startswith("(", i):
        return _balanced(text, i, "(", ")")
    name = _PV_NAME.match(text, i)
    if name is None:
        raise ValueError(f"bad $pv spec at offset {start}")
    i = name.end()
    if text.startswith("(", i):
        i = _balanced(text, i, "(", ")")
    if text.startswith("[", i):
        i = _balanced(text, i, "[", "]")
    return i


def _balanced(text: str, i: int, opening: str, closing: str) -> int:
    depth = 0
    for j in range(i, len(text)):
        if text[j] == opening:
            depth += 1
        elif text[j] == closing:
            depth -= 1
            if depth == 0:
                return j + 1
    raise ValueError(f"bad $pv spec: missing {closing!r} for {opening!r} at offset {i}")


def _build_output(rule: DialplanRule, subject: str) -> str | None:
    """Kamailio ``rule_translate`` without a SIP message; None on failure."""
    if not rule.repl_exp:
        return ""
    repl = byte_view(rule.repl_exp)
    match = None
    if rule.subst is not None:
        match = rule.subst.search(subject)
        if match is None:
            return None
    if match is None or not rule.repl:
        return repl
    out: list[str] = []
    size = 0
    offset = 0
    for token in rule.repl:
        if offset < token.offset:
            piece = repl[offset : token.offset]
            if size + len(piece) >= MAX_OUTPUT:
                return None
            out.append(piece)
            size += len(piece)
            offset = token.offset
        if token.kind == _GROUP:
            piece = match.group(token.group) or ""
        elif token.kind == _CHAR:
            piece = token.value
        else:
            continue  # \u and $pv need a SIP message: their text stays in the output
        if size + len(piece) >= MAX_OUTPUT:
            return None
        out.append(piece)
        size += len(piece)
        offset += token.size
    out.append(repl[offset:])
    return "".join(out)
