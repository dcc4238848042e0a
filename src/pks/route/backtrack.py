"""Beside the data path: refuse a dialplan pattern whose matching time can blow up.

Python's ``re`` is a backtracking matcher: when a subject does not match, it tries every way
the pattern could have matched it before giving up. For most patterns that is a handful of
ways; for some it is exponential in the subject's length (``^(3+)+$`` on 25 digits and an
``x``: 2²⁵ ways, half a second; one more digit, twice that) or a high power of it
(``^(.*a){20}$``). The subject is the R-URI user part a peer sends, so one such rule lets
any peer that reaches the dialplan stall the proxy. This module decides, once per pattern
when a snapshot is built, whether a compiled pattern is safe to run on every call.

The decision is static, on the pattern's own parse tree (``re._parser``, the stdlib's), and
follows the theory of ambiguous automata (Weber & Seidl 1991): the pattern becomes a
nondeterministic automaton whose paths are the matcher's choices — one state per character
position, one transition per way of reaching the next position, so ``(3+)+`` has two ways
from a ``3`` to the next ``3`` (the inner loop or the outer one). Then

* **exponential** (always refused): two different paths from a state back to itself read the
  same text — a repeated part can match the same characters in more than one way:
  ``(a+)+``, ``(a*)*``, ``(a|a)*``, ``(\\d|\\d\\d)+``, ``(\\d+)*\\d``, ``(x+x+)+y``, ``(.*a){20}``;
* **polynomial of degree k**: k loops, each able to read the same text as the next one and
  to hand over to it (``.*1.*1.*1``: the ones can be shared among the stars in ~n³ ways).
  Refused above `MAX_DEGREE`. An unanchored search counts one more loop (every start
  position is tried).

Sound approximations (they can only refuse more, never accept a slow pattern): a counted
repeat ``X{n,m}`` is read as ``X`` then ``X*`` (``X{n}`` of one character is kept exact:
``[0-9]{8}`` is eight positions, no loop); atomic groups and possessive quantifiers are read
as ordinary ones; a back-reference as a copy of its group; lookarounds as nothing in the
pattern and checked on their own. Python's rule that a repetition stops after an empty
iteration is kept: an epsilon path never goes around the same loop twice.

Which patterns pass: everything an operator usually writes — literals, classes, anchors,
alternations of literals, ``[0-9]{8}``, ``\\d+``, ``.*``, ``^(00|\\+)49.*``, a few ``.*``
apart. The subject is at most 64 characters (``PKS_MAX_USER_LENGTH``), so an accepted
pattern costs at most about 65³ steps of the matcher (0.3 ms measured, the cubic case).
"""

from __future__ import annotations

import functools
import re
import re._constants as sre  # the opcodes of re._parser's tree
import re._parser as sre_parse
from collections.abc import Hashable, Iterable, Sequence
from typing import Any, TypeVar

__all__ = ["MAX_DEGREE", "MAX_WAYS", "backtracking_risk"]

MAX_DEGREE = 3
"""Most loops that may share one stretch of the subject (the matching time grows as the
subject's length to this power). Measured on 64 characters (the worst subject for each):
degree 3 (``^.*1.*1.*2$``, ``^\\d*\\d*\\d*x``) ≤ 0.3 ms, degree 4 (``^.*1.*1.*1.*2$``)
2 ms and up to 50 ms (``^(.*a){4}$``), degree 5 0.4 s."""

MAX_WAYS = 1024
"""Most ways one text may be read apart from loops: ``a?`` twenty-two times then ``x`` has no
loop at all, yet C(22, 11) ≈ 700 000 ways for eleven ``a`` and a ``y`` (0.45 s)."""

_BUDGET = 200_000  # work units of one check: past it the pattern is refused as too complex
_EXACT_MAX = 128  # X{n} of one character up to this n: n positions, no loop
_SUBJECT_MAX = 65  # the longest R-URI user part (PKS_MAX_USER_LENGTH, 64) and one more
_ALL = (1 << 256) - 1
_NEWLINE = 1 << 10

_DIGIT = sum(1 << c for c in range(48, 58))
_UPPER = sum(1 << c for c in range(65, 91))
_LOWER = sum(1 << c for c in range(97, 123))
_WORD = _DIGIT | _UPPER | _LOWER | 1 << 95
_SPACE = sum(1 << c for c in (9, 10, 11, 12, 13, 32))
_CATEGORIES = {
    sre.CATEGORY_DIGIT: _DIGIT,
    sre.CATEGORY_NOT_DIGIT: _ALL & ~_DIGIT,
    sre.CATEGORY_SPACE: _SPACE,
    sre.CATEGORY_NOT_SPACE: _ALL & ~_SPACE,
    sre.CATEGORY_WORD: _WORD,
    sre.CATEGORY_NOT_WORD: _ALL & ~_WORD,
    sre.CATEGORY_LINEBREAK: _NEWLINE,
    sre.CATEGORY_NOT_LINEBREAK: _ALL & ~_NEWLINE,
}
_T = TypeVar("_T", bound=Hashable)
_SINGLE = (sre.LITERAL, sre.NOT_LITERAL, sre.ANY, sre.IN)
_REPEATS = (sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT)

EXPONENTIAL = (
    "can take exponential time to match: a repeated part can match the same characters in"
    " more than one way (like (3+)+, (a*)* or (\\d|\\d\\d)+); write it so that each"
    " character can be matched one way only (^3+$ rather than ^(3+)+$)"
)


class _TooComplex(Exception):
    pass


def backtracking_risk(pattern: re.Pattern[str], *, fullmatch: bool = False) -> str | None:
    """Why running ``pattern`` on a subject can take too long, or None when it cannot.

    ``fullmatch``: the caller runs ``pattern.fullmatch`` (anchored at the start); otherwise
    ``pattern.search``, where every start position is tried. The result is plain words to
    follow the pattern in an error message.
    """
    return _risk(pattern.pattern, pattern.flags, fullmatch)


@functools.lru_cache(maxsize=4096)  # rules share patterns; the answer depends on nothing else
def _risk(text: str, flags: int, fullmatch: bool) -> str | None:
    tree = sre_parse.parse(text, flags)
    searched = not fullmatch and not _anchored(tree)
    try:
        return _check(tree, flags, searched, [_BUDGET])
    except _TooComplex:
        return "is too complex to be checked for slow matching; write it more simply"


def _check(tree: Sequence[Any], flags: int, searched: bool, budget: list[int]) -> str | None:
    loops = _simple_loops(tree)
    if loops is not None and loops + searched <= MAX_DEGREE:
        return None  # no loop inside a loop and few loops: neither case can arise
    nfa = _Nfa(flags)
    start, _ = nfa.sequence(tree, flags)  # where it ends is not needed: a suffix that fails
    # the match is assumed to exist (the worst case of a backtracking matcher)
    for body in nfa.lookarounds:  # each runs at every position: a search of its own
        risk = _check(body, flags, True, budget)
        if risk is not None:
            return risk
    graph = _Graph(nfa, start, searched, budget)
    if graph.exponential():
        return EXPONENTIAL
    if graph.ways_without_loops(MAX_WAYS) > MAX_WAYS:
        return (
            f"can take too long to match: a number can be read in more than {MAX_WAYS} ways"
            f" (like a?a?a?…a, optional parts that can take the same characters)"
        )
    degree = graph.degree()
    if degree > MAX_DEGREE:
        return (
            f"can take too long to match: its matching time grows as the {_nth(degree)}"
            f" power of the number's length ({degree} repeated parts, counting the search for"
            f" a start position when the pattern does not begin with ^, can match the same"
            f" characters one after another, like .*1.*1.*1); at most {MAX_DEGREE} are allowed"
        )
    return None


def _nth(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def _anchored(tree: Sequence[Any]) -> bool:
    """Does every match start at the subject's start (a leading ^ or \\A on every branch)?"""
    if not tree:
        return False
    op, av = tree[0]
    if op is sre.AT:
        return av in (sre.AT_BEGINNING, sre.AT_BEGINNING_STRING)
    if op is sre.SUBPATTERN or op is sre.ATOMIC_GROUP:
        return _anchored(av[-1] if op is sre.SUBPATTERN else av)
    if op is sre.BRANCH:
        return all(_anchored(branch) for branch in av[1])
    return False


def _simple_loops(tree: Sequence[Any]) -> int | None:
    """The loops and choices of a pattern whose every repeat is of one character and no
    lookaround or back-reference occurs (the usual dialplan pattern), or None for any other
    pattern. With at most `MAX_DEGREE` of them nothing can go wrong: no loop holds another
    (no exponential case), at most that many loops in a row, at most 2^3 ways otherwise."""
    count = 0
    for op, av in tree:
        if op in _REPEATS:
            low, high, body = av
            if len(body) != 1 or body[0][0] not in _SINGLE:
                return None
            if low != high or high > _EXACT_MAX:
                count += 1
        elif op is sre.BRANCH:  # a choice too: several could read the same characters
            count += 1
            for branch in av[1]:
                inner = _simple_loops(branch)
                if inner is None:
                    return None
                count += inner
        elif op is sre.SUBPATTERN:
            inner = _simple_loops(av[-1])
            if inner is None:
                return None
            count += inner
        elif op not in _SINGLE and op is not sre.AT:
            return None
    return count


class _Nfa:
    """Thompson automaton over byte sets: ``mask[s]`` 0 for an epsilon state (successors in
    ``eps[s]``), else the set state ``s`` reads (then it goes to ``eps[s][0]``)."""

    def __init__(self, flags: int) -> None:
        self.mask: list[int] = []
        self.eps: list[list[int]] = []
        self.groups: dict[int, Sequence[Any]] = {}
        self.lookarounds: list[Sequence[Any]] = []
        self.base_flags = flags

    def state(self, mask: int = 0) -> int:
        if len(self.mask) > 5_000:
            raise _TooComplex
        self.mask.append(mask)
        self.eps.append([])
        return len(self.mask) - 1

    def char(self, mask: int) -> tuple[int, int]:
        start, end = self.state(mask), self.state()
        self.eps[start].append(end)
        return start, end

    def sequence(self, items: Iterable[tuple[Any, Any]], flags: int) -> tuple[int, int]:
        start = cur = self.state()
        for op, av in items:
            first, last = self.item(op, av, flags)
            self.eps[cur].append(first)
            cur = last
        return start, cur

    def item(self, op: Any, av: Any, flags: int) -> tuple[int, int]:
        if op in _SINGLE:
            return self.char(_set_of(op, av, flags))
        if op is sre.BRANCH:
            start, end = self.state(), self.state()
            for branch in av[1]:
                first, last = self.sequence(branch, flags)
                self.eps[start].append(first)
                self.eps[last].append(end)
            return start, end
        if op is sre.SUBPATTERN:
            group, add, remove, body = av
            if group is not None:
                self.groups[group] = body
            return self.sequence(body, (flags | add) & ~remove)
        if op is sre.ATOMIC_GROUP:
            return self.sequence(av, flags)
        if op in _REPEATS:
            low, high, body = av
            return self.repeat(low, high, body, flags)
        if op is sre.GROUPREF:  # matches what its group matched: read as the group again
            return self.sequence(self.groups.get(av, ()), flags)
        if op is sre.GROUPREF_EXISTS:
            _, yes, no = av
            return self.item(sre.BRANCH, (None, [yes, no or []]), flags)
        if op is sre.ASSERT or op is sre.ASSERT_NOT:
            self.lookarounds.append(av[1])
            return self.sequence((), flags)
        if op is sre.AT or op is sre.FAILURE:
            return self.sequence((), flags)
        raise _TooComplex  # an opcode re._parser does not produce in 3.11

    def repeat(self, low: int, high: int, body: Sequence[Any], flags: int) -> tuple[int, int]:
        one = len(body) == 1 and body[0][0] in _SINGLE
        if one and low == high and high <= _EXACT_MAX:
            return self.sequence(list(body) * low, flags)  # exact: no choice to make
        start = cur = self.state()
        if low:  # X{n,m}, n ≥ 1: X then X* (the X* below), a language that contains it
            first, last = self.sequence(body, flags)
            self.eps[cur].append(first)
            cur = last
        if high <= 1:
            if high > low:  # X?
                first, last = self.sequence(body, flags)
                end = self.state()
                self.eps[cur] += [first, end]
                self.eps[last].append(end)
                return start, end
            return start, cur
        first, last = self.sequence(body, flags)
        end = self.state()
        self.eps[cur] += [first, end]
        self.eps[last] += [first, end]
        return start, end


def _set_of(op: Any, av: Any, flags: int) -> int:  # noqa: C901 - one branch per item kind
    """The byte set one single-character item reads."""
    if op is sre.ANY:
        mask = _ALL if flags & re.DOTALL else _ALL & ~_NEWLINE
    elif op is sre.LITERAL:
        mask = _bit(av)
    elif op is sre.NOT_LITERAL:
        mask = _ALL & ~_bit(av)
    else:
        mask = 0
        negate = False
        for kind, value in av:
            if kind is sre.NEGATE:
                negate = True
            elif kind is sre.LITERAL:
                mask |= _bit(value)
            elif kind is sre.RANGE or kind is sre.RANGE_UNI_IGNORE:
                low, high = value
                high = min(high, 255)
                if low <= high:
                    mask |= ((1 << (high - low + 1)) - 1) << low
                if value[1] > 255:
                    mask |= 1 << 255  # beyond the byte view: stands for "some other character"
            elif kind is sre.CATEGORY:
                mask |= _CATEGORIES.get(value, _ALL)
            else:
                mask = _ALL  # not produced for str patterns; the widest set is safe
        if negate:
            mask = _ALL & ~mask
    if flags & re.IGNORECASE:
        mask |= (mask & _UPPER) << 32 | (mask & _LOWER) >> 32
    return mask


def _bit(code: int) -> int:
    return 1 << min(code, 255)


class _Graph:
    """The automaton without epsilon moves: one node per character state (plus the start,
    and the search loop of an unanchored pattern); ``moves[n]`` = (next node, ways), ways
    capped at 2 (two ways are already a choice the matcher makes twice)."""

    def __init__(self, nfa: _Nfa, start: int, searched: bool, budget: list[int]) -> None:
        self.nfa = nfa
        self.budget = budget
        chars = [s for s, mask in enumerate(nfa.mask) if mask]
        self.node = {s: i + 1 for i, s in enumerate(chars)}  # node 0: the start
        self.mask = [0] + [nfa.mask[s] for s in chars]
        firsts = self.closure(start)
        self.moves = [firsts] + [self.closure(nfa.eps[s][0]) for s in chars]
        if searched:  # re.search: a loop over any character before the pattern starts
            loop = len(self.mask)
            self.mask.append(_ALL)
            self.moves.append([(loop, 1), *firsts])
            self.moves[0] = [(loop, 1), *firsts]

    def spend(self, units: int) -> None:
        self.budget[0] -= units
        if self.budget[0] < 0:
            raise _TooComplex

    def closure(self, source: int) -> list[tuple[int, int]]:
        """Character states reachable from the epsilon state ``source`` by epsilon moves,
        with the number of distinct ways (simple paths only: in ``re`` an iteration that
        matched nothing ends its repetition, so no path goes around a loop twice)."""
        nfa = self.nfa
        ways: dict[int, int] = {}
        on_path = {source}
        stack: list[tuple[int, int]] = [(source, 0)]
        while stack:
            state, index = stack.pop()
            self.spend(1)
            if nfa.mask[state]:
                ways[state] = min(2, ways.get(state, 0) + 1)
                on_path.discard(state)
                continue
            successors = nfa.eps[state]
            if index < len(successors):
                stack.append((state, index + 1))
                nxt = successors[index]
                if nxt not in on_path:
                    on_path.add(nxt)
                    stack.append((nxt, 0))
            else:
                on_path.discard(state)
        return [(self.node[s], n) for s, n in ways.items()]

    def exponential(self) -> bool:
        """Two different paths from a node back to itself reading the same text: a strongly
        connected part of the pair automaton holding a pair (q, q) and a step where the two
        paths differ."""
        mask, moves = self.mask, self.moves
        pairs: dict[tuple[int, int], list[tuple[int, int]]] = {(0, 0): []}
        differ: list[tuple[tuple[int, int], tuple[int, int]]] = []
        todo = [(0, 0)]
        while todo:
            pair = todo.pop()
            u, v = pair
            edges = pairs[pair]
            for t, m1 in moves[u]:
                self.spend(len(moves[v]))
                for s, _ in moves[v]:
                    if not mask[t] & mask[s]:
                        continue
                    nxt = (t, s)
                    edges.append(nxt)
                    if u != v or t != s or m1 > 1:
                        differ.append((pair, nxt))
                    if nxt not in pairs:
                        pairs[nxt] = []
                        todo.append(nxt)
        component = _components(pairs)
        diagonal = {component[(q, r)] for q, r in pairs if q == r}
        return any(component[a] == component[b] and component[a] in diagonal for a, b in differ)

    def ways_without_loops(self, limit: int) -> int:
        """The most paths one text has through the automaton with its loops taken out
        (``a?a?a?…a``: 2ⁿ ways with no loop at all), up to just over ``limit``: every text
        up to `_SUBJECT_MAX` characters, one byte class at a time, identical count vectors
        merged."""
        mask, moves = self.mask, self.moves
        component = _components({i: [t for t, _ in m] for i, m in enumerate(moves)})
        forward = [
            [(t, n) for t, n in m if component[t] != component[i]] for i, m in enumerate(moves)
        ]
        atoms = [_ALL]
        for m in set(mask):
            atoms = [part for a in atoms for part in (a & m, a & ~m) if part]
        most = 1
        frontier: set[tuple[tuple[int, int], ...]] = {((0, 1),)}
        for _ in range(_SUBJECT_MAX):
            following: set[tuple[tuple[int, int], ...]] = set()
            for vector in frontier:
                for atom in atoms:
                    counts: dict[int, int] = {}
                    for node, count in vector:
                        self.spend(len(forward[node]))
                        for t, n in forward[node]:
                            if mask[t] & atom:
                                counts[t] = counts.get(t, 0) + count * n
                    if counts:
                        total = sum(counts.values())
                        if total > limit:
                            return total
                        most = max(most, total)
                        following.add(tuple(sorted(counts.items())))
            if not following:
                break
            frontier = following
        return most

    def degree(self) -> int:
        """The longest chain of loops p₁ … p_k where each pᵢ can, on one text w, go around
        itself, reach pᵢ₊₁, and pᵢ₊₁ go around itself (polynomial ambiguity of degree k)."""
        single = {i: [t for t, _ in self.moves[i]] for i in range(len(self.moves))}
        component = _components(single)
        sizes: dict[int, int] = {}
        for c in component.values():
            sizes[c] = sizes.get(c, 0) + 1
        loops = [n for n in single if sizes[component[n]] > 1 or n in single[n]]  # on a cycle
        reach = {n: self.reachable(n, single) for n in loops}
        after: dict[int, list[int]] = {n: [] for n in loops}
        for p in loops:
            for q in loops:
                distinct = p != q and component[p] != component[q]
                if distinct and q in reach[p] and self.hands_over(p, q):
                    after[p].append(q)
        longest: dict[int, int] = {}

        def chain(n: int) -> int:
            if n not in longest:
                longest[n] = 1 + max((chain(m) for m in after[n]), default=0)
            return longest[n]

        return max((chain(n) for n in loops), default=0)

    def reachable(self, node: int, single: dict[int, list[int]]) -> set[int]:
        seen = {node}
        todo = [node]
        while todo:
            for nxt in single[todo.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        self.spend(len(seen))
        return seen

    def hands_over(self, p: int, q: int) -> bool:
        """Is there a text w with p →w p, p →w q and q →w q? (triples from (p, p, q))"""
        mask, moves = self.mask, self.moves
        goal = (p, q, q)
        seen = {(p, p, q)}
        todo = [(p, p, q)]
        while todo:
            a, b, c = todo.pop()
            for x, _ in moves[a]:
                for y, _ in moves[b]:
                    common = mask[x] & mask[y]
                    if not common:
                        continue
                    self.spend(len(moves[c]))
                    for z, _ in moves[c]:
                        if not common & mask[z]:
                            continue
                        nxt = (x, y, z)
                        if nxt == goal:
                            return True
                        if nxt not in seen:
                            seen.add(nxt)
                            todo.append(nxt)
        return False


def _components(graph: dict[_T, list[_T]]) -> dict[_T, int]:
    """Strongly connected components (Tarjan, iterative): node → component number."""
    index: dict[_T, int] = {}
    low: dict[_T, int] = {}
    component: dict[_T, int] = {}
    stack: list[_T] = []
    on_stack: set[_T] = set()
    counter = 0
    number = 0
    for root in graph:
        if root in index:
            continue
        work: list[tuple[_T, int]] = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            successors = graph[node]
            if i < len(successors):
                work.append((node, i + 1))
                nxt = successors[i]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if work:  # report to the parent once this node is done
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component[member] = number
                    if member == node:
                        break
                number += 1
    return component
