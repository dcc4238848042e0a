"""PCRE → Python ``re``: dialplan regexes compiled with Kamailio's meaning.

Beside the data path: used once per rule when a snapshot is built, never per message.
Kamailio 5.6 compiles ``match_exp`` (match_op 1) and ``subst_exp`` with libpcre 8.x and no
options: byte semantics (no UTF-8), ASCII-only ``\\d \\w \\s`` and case folding, ``$`` also
before a final newline, unanchored search. Python's ``re`` agrees on the everyday subset and
differs on the rest, so every pattern goes through a small translator that:

* works on the *byte view* of the text (UTF-8 bytes decoded as Latin-1, one character per
  byte) and compiles with ``re.ASCII`` — lengths, ``.`` and classes then count bytes like PCRE;
* rewrites PCRE syntax Python spells differently or lacks: ``\\Q…\\E``, ``\\x{hh}``,
  ``\\o{…}``, ``\\xh``, ``\\e``, ``\\cX``, ``\\h \\v \\R \\N \\X \\z \\Z \\G \\C \\B``,
  ``\\g{n}``/``\\k<n>``, ``(?<name>…)``, ``[[:digit:]]`` POSIX classes, ``(?i)`` in the
  middle of a pattern, multiline ``^`` (never after a final newline), ``(*FAIL)``, ``{,n}``
  (a literal in PCRE 8), letter escapes PCRE 8 reads as literals (``\\i`` = ``i``), and
  ``\\8``/``\\9`` and octal escapes;
* rejects, naming the position, what PCRE rejects but Python would accept (``\\u``,
  ``(?a)``, quantifiers above 65535, POSIX collating elements, bad ``[a-\\d]`` ranges) and the
  PCRE features with no Python equivalent (recursion, ``\\K``, ``\\p``, verbs, ``(?x)``…).

The invariant: a pattern compiles here iff libpcre 8 accepts it (except the documented
unsupported features, rejected with a clear message), and then both match the same subjects.
The translator also reports the literal prefix that every match must start with, when the
pattern is anchored (``^abc…`` without top-level ``|``), for the dialplan prefix index.
"""

from __future__ import annotations

import bisect
import functools
import re
import warnings
from dataclasses import dataclass, field

__all__ = ["CompiledPcre", "PcreError", "byte_view", "compile_pcre", "text_view"]

MAX_QUANTIFIER = 65535

_HEX = "0123456789abcdefABCDEF"
_OCT = "01234567"
_WORD = frozenset(range(48, 58)) | frozenset(range(65, 91)) | frozenset(range(97, 123)) | {95}
_ALL = frozenset(range(256))
_HSPACE = frozenset((0x09, 0x20, 0xA0))
_VSPACE = frozenset((0x0A, 0x0B, 0x0C, 0x0D, 0x85))

# POSIX classes as PCRE 8 sees them with its default (C locale) tables.
_POSIX: dict[str, frozenset[int]] = {
    "alpha": frozenset(range(65, 91)) | frozenset(range(97, 123)),
    "digit": frozenset(range(48, 58)),
    "alnum": _WORD - {95},
    "ascii": frozenset(range(128)),
    "blank": frozenset((0x09, 0x20)),
    "cntrl": frozenset(range(32)) | {127},
    "graph": frozenset(range(33, 127)),
    "lower": frozenset(range(97, 123)),
    "print": frozenset(range(32, 127)),
    "punct": frozenset(range(33, 127)) - _WORD | {95},
    "space": frozenset((0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20)),
    "upper": frozenset(range(65, 91)),
    "word": _WORD,
    "xdigit": frozenset(map(ord, _HEX)),
}
# Escapes Python spells the same way (with re.ASCII) inside and outside classes.
_SAME_CLASS_ESCAPES = frozenset("dDsSwW")
_CHAR_ESCAPES = {"a": 0x07, "e": 0x1B, "f": 0x0C, "n": 0x0A, "r": 0x0D, "t": 0x09}
_NO_CASE_ESCAPES = "PCRE does not support \\L, \\l, \\N{name}, \\U, or \\u"
_COUNTED_REPEAT = re.compile(r"\{([0-9]+)(,([0-9]*))?\}")
_K_NAME = re.compile(r"<([A-Za-z_]\w*)>|'([A-Za-z_]\w*)'|\{([A-Za-z_]\w*)\}", re.ASCII)
_G_REF = re.compile(r"\{(-?[0-9]+|[A-Za-z_]\w*)\}|(-?[0-9]+)", re.ASCII)
_GROUP_NAME = re.compile(r"P?<([A-Za-z_]\w*)>|'([A-Za-z_]\w*)'", re.ASCII)
_OPTIONS = re.compile(r"([a-zA-Z]*)(?:-([a-zA-Z]*))?([:)])")
_CONDITION = re.compile(
    r"(-?[0-9]+)\)|<([A-Za-z_]\w*)>\)|'([A-Za-z_]\w*)'\)|([A-Za-z_]\w*)\)", re.ASCII
)


class PcreError(ValueError):
    """A pattern PCRE would reject, or that uses a PCRE feature we do not support."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(message, position)
        self.message = message
        self.position = position

    def __str__(self) -> str:
        return f"{self.message} at position {self.position}"


@dataclass(frozen=True, slots=True)
class CompiledPcre:
    """A compiled dialplan regex; match it against ``byte_view(subject)``.

    ``prefix`` (byte view) is a literal every matching subject starts with, '' when unknown;
    ``prefix_only``: the pattern is ``^`` and that literal, nothing else, so a subject matches
    exactly when it starts with ``prefix`` (no need to run the pattern).
    """

    pattern: re.Pattern[str]
    prefix: str
    groups: int
    prefix_only: bool = False


def byte_view(text: str) -> str:
    """Text as PCRE sees it: its UTF-8 bytes, one character per byte (ASCII is unchanged)."""
    if text.isascii():
        return text
    return text.encode("utf-8", "surrogateescape").decode("latin-1")


def text_view(view: str) -> str:
    """Inverse of :func:`byte_view` (bytes that are not UTF-8 come back as surrogates)."""
    if view.isascii():
        return view
    return view.encode("latin-1").decode("utf-8", "surrogateescape")


@functools.lru_cache(maxsize=4096)  # rules often share a subst_exp; results are immutable
def compile_pcre(pattern: str) -> CompiledPcre:
    """Compile a PCRE pattern (Kamailio dialplan flavour); raise :class:`PcreError`."""
    translator = _Translator(byte_view(pattern))
    python = translator.run()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            compiled = re.compile(python, re.ASCII)
    except re.error as exc:
        position = translator.source_position(exc.pos or 0)
        raise PcreError(exc.msg, position) from None
    prefix = "" if translator.alternation else "".join(translator.prefix or ())
    return CompiledPcre(compiled, prefix, compiled.groups, bool(prefix) and translator.only_prefix)


def _char(code: int) -> str:
    """One character as Python regex text, safe inside and outside a class."""
    ch = chr(code)
    if ch.isascii() and ch.isalnum():
        return ch
    return f"\\x{code:02x}"


def _set_text(codes: frozenset[int]) -> str:
    """Class body (without brackets) for an explicit set of byte values, as ranges."""
    parts: list[str] = []
    ordered = sorted(codes)
    start = 0
    while start < len(ordered):
        end = start
        while end + 1 < len(ordered) and ordered[end + 1] == ordered[end] + 1:
            end += 1
        lo, hi = ordered[start], ordered[end]
        parts.append(_char(lo) if lo == hi else f"{_char(lo)}-{_char(hi)}")
        start = end + 1
    return "".join(parts)


def _set_atom(codes: frozenset[int]) -> str:
    return f"[{_set_text(codes)}]" if codes else "(?!)"


@dataclass(slots=True)
class _Frame:
    """One open group: whether (?m) is on, and the inline-option scopes opened inside it."""

    multiline: bool = False
    scopes: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Escape:
    """A decoded escape: a character code, a set of codes, or Python text (outside classes)."""

    end: int
    code: int | None = None
    codes: frozenset[int] | None = None
    python: str | None = None
    unrepeatable: bool = False


class _Translator:
    """Single pass over the pattern; emits Python regex text with a source-position map."""

    def __init__(self, src: str) -> None:
        self.src = src
        self.out: list[str] = []
        self.out_len = 0
        self.out_starts: list[int] = []
        self.src_starts: list[int] = []
        self.groups = 0
        self.frames: list[_Frame] = [_Frame()]
        self.prefix: list[str] | None = None  # literal prefix after a leading '^'
        self.prefix_open = False  # still growing: only literals since the '^'
        self.alternation = False
        self.unrepeatable = False  # the last token is an assertion PCRE cannot repeat
        self.quantified = False  # the last token is a quantifier
        self.literals = 0  # literal characters emitted
        self.only_prefix = False  # after run(): the pattern is '^' and literals, nothing else

    # -- output -------------------------------------------------------------------------

    def emit(self, text: str, src_pos: int) -> None:
        self.unrepeatable = False
        self.quantified = False
        self.out_starts.append(self.out_len)
        self.src_starts.append(src_pos)
        self.out.append(text)
        self.out_len += len(text)

    def source_position(self, out_pos: int) -> int:
        index = bisect.bisect_right(self.out_starts, out_pos) - 1
        return self.src_starts[index] if index >= 0 else 0

    def literal(self, code: int, src_pos: int) -> None:
        self.emit(_char(code), src_pos)
        self.literals += 1
        if self.prefix_open and self.prefix is not None and len(self.frames) == 1:
            self.prefix.append(chr(code))

    def other(self, text: str, src_pos: int) -> None:
        """Emit a non-literal token: it ends the literal prefix."""
        self.emit(text, src_pos)
        if len(self.frames) == 1:
            self.prefix_open = False

    # -- main loop ----------------------------------------------------------------------

    def run(self) -> str:  # noqa: C901 - one branch per metacharacter
        src = self.src
        i = 0
        if src.startswith("^"):
            self.emit("^", 0)
            self.prefix = []
            self.prefix_open = True
            i = 1
        while i < len(src):
            c = src[i]
            if c == "\\":
                i = self.escape(i)
            elif c == "[":
                i = self.char_class(i)
            elif c == "(":
                i = self.open_group(i)
            elif c == ")":
                i = self.close_group(i)
            elif c == "|":
                self.alternate(i)
                i += 1
            elif c == "{":
                i = self.brace(i)
            elif c in "*+?":
                self.quantifier(c, i)
                i += 1
            elif c == "^" and self.frames[-1].multiline:
                # PCRE's multiline ^ does not match after a newline that ends the subject
                self.other("(?:\\A|(?<=\\n)(?!\\Z))", i)
                self.unrepeatable = True
                i += 1
            elif c in "^$.":
                self.other(c, i)
                i += 1
            else:
                self.literal(ord(c), i)
                i += 1
        if len(self.frames) > 1:
            raise PcreError("missing )", len(src))
        self.only_prefix = (
            self.prefix_open
            and not self.alternation
            and not self.frames[0].scopes
            and len(self.out_starts) == 1 + self.literals  # the '^', then literals only
            and self.prefix is not None
            and len(self.prefix) == self.literals
        )
        self.emit(")" * len(self.frames[0].scopes), len(src))
        return "".join(self.out)

    def quantifier(self, text: str, src_pos: int) -> None:
        if self.unrepeatable:
            raise PcreError("nothing to repeat", src_pos)
        self.emit(text, src_pos)
        self.quantified = True
        if self.prefix_open and self.prefix and len(self.frames) == 1:
            self.prefix.pop()  # the quantified character is optional or repeated
        if len(self.frames) == 1:
            self.prefix_open = False

    def brace(self, i: int) -> int:
        match = _COUNTED_REPEAT.match(self.src, i)
        if match is None:  # not a counted repeat: PCRE reads '{' literally ({,n} included)
            self.literal(ord("{"), i)
            return i + 1
        low = int(match.group(1))
        high = match.group(3)
        if low > MAX_QUANTIFIER or (high and int(high) > MAX_QUANTIFIER):
            raise PcreError("number too big in {} quantifier", match.end() - 1)
        if high and int(high) < low:
            raise PcreError("numbers out of order in {} quantifier", match.end() - 1)
        self.quantifier(match.group(0), i)
        return match.end()

    def alternate(self, i: int) -> None:
        frame = self.frames[-1]
        self.emit(")" * len(frame.scopes) + "|" + "".join(frame.scopes), i)
        if len(self.frames) == 1:
            self.alternation = True
            self.prefix_open = False

    # -- escapes ------------------------------------------------------------------------

    def escape(self, i: int) -> int:
        src = self.src
        if i + 1 >= len(src):
            raise PcreError("\\ at end of pattern", i + 1)
        c = src[i + 1]
        if c == "Q":
            end = src.find("\\E", i + 2)
            stop = len(src) if end < 0 else end
            for j in range(i + 2, stop):
                self.literal(ord(src[j]), j)
            return len(src) if end < 0 else end + 2
        if c == "E":
            return i + 2
        esc = self.read_escape(i, in_class=False)
        if esc.code is not None:
            self.literal(esc.code, i)
        elif esc.codes is not None:
            self.other(_set_atom(esc.codes), i)
        elif esc.python is not None:
            self.other(esc.python, i)
            self.unrepeatable = esc.unrepeatable
        return esc.end

    def read_escape(self, i: int, *, in_class: bool) -> _Escape:  # noqa: C901 - one table
        """Decode the escape at ``src[i] == '\\\\'`` (not \\Q/\\E)."""
        src = self.src
        c = src[i + 1]
        j = i + 2
        if c in "0123456789":
            return self.digit_escape(i, in_class=in_class)
        if not (c.isascii() and c.isalpha()):
            return _Escape(j, code=ord(c))
        if c in _CHAR_ESCAPES:
            return _Escape(j, code=_CHAR_ESCAPES[c])
        if c in _SAME_CLASS_ESCAPES:
            return _Escape(j, python="\\" + c)
        if c in "hH":
            return _Escape(j, codes=_HSPACE if c == "h" else _ALL - _HSPACE)
        if c in "vV":
            return _Escape(j, codes=_VSPACE if c == "v" else _ALL - _VSPACE)
        if c == "c":
            if j >= len(src):
                raise PcreError("\\c at end of pattern", j)
            if not src[j].isascii():
                raise PcreError("\\c must be followed by an ASCII character", j)
            return _Escape(j + 1, code=ord(src[j].upper()) ^ 0x40)
        if c == "x":
            return self.hex_escape(i)
        if c == "o":
            close = src.find("}", j + 1)
            digits = src[j + 1 : close]
            if not src.startswith("{", j) or close < 0 or not digits:
                raise PcreError("missing opening brace after \\o", j)
            if any(d not in _OCT for d in digits):
                raise PcreError("non-octal character in \\o{} (closing brace missing?)", j)
            return _Escape(close + 1, code=self.byte_value(int(digits, 8), j))
        if c in "lLuU":
            raise PcreError(_NO_CASE_ESCAPES, i + 1)
        if c in "pP":
            raise PcreError("\\p and \\P (Unicode properties) are not supported", i + 1)
        if in_class:
            if c == "N":
                raise PcreError("\\N is not supported in a class", i + 1)
            if c == "b":
                return _Escape(j, code=0x08)
            return _Escape(j, code=ord(c))  # PCRE 8 reads other letters literally here
        return self.assertion_escape(i)

    def assertion_escape(self, i: int) -> _Escape:
        """Letter escapes that only exist outside classes."""
        src = self.src
        c = src[i + 1]
        j = i + 2
        simple = {
            "b": "\\b",
            "B": "(?:(?<=\\w)(?=\\w)|(?<!\\w)(?!\\w))",  # Python's \B fails on ''
            "A": "\\A",
            "G": "\\A",  # a search starts at offset 0: \G asserts that same position
            "z": "\\Z",
            "Z": "(?=\\n?\\Z)",
            "C": "(?s:.)",
            "R": "(?>\\r\\n|[\\n\\x0b\\x0c\\r\\x85])",
            "X": "(?>\\r\\n|(?s:.))",  # no combining marks among the 256 byte values
        }
        if c in simple:
            return _Escape(j, python=simple[c], unrepeatable=c in "bBAGzZ")
        if c == "N":
            if src.startswith("{", j) and not _COUNTED_REPEAT.match(src, j):
                raise PcreError(_NO_CASE_ESCAPES, i + 1)
            return _Escape(j, python="[^\\n]")
        if c == "g":
            return self.g_reference(i)
        if c == "k":
            match = _K_NAME.match(src, j)
            if match is None:
                raise PcreError(
                    "\\k is not followed by a braced, angle-bracketed, or quoted name", j
                )
            name = match.group(match.lastindex or 1)
            return _Escape(match.end(), python=f"(?P={name})")
        if c == "K":
            raise PcreError("\\K is not supported", i + 1)
        return _Escape(j, code=ord(c))  # PCRE 8: an unknown letter escape is that letter

    def digit_escape(self, i: int, *, in_class: bool) -> _Escape:
        src = self.src
        c = src[i + 1]
        if c == "0":
            end = i + 2
            while end < min(i + 4, len(src)) and src[end] in _OCT:
                end += 1
            return _Escape(end, code=int(src[i + 1 : end], 8))
        end = i + 1
        while end < len(src) and src[end] in "0123456789":
            end += 1
        number = int(src[i + 1 : end])
        if not in_class and (number < 8 or number <= self.groups):
            return _Escape(end, python=f"(?:\\{number})")
        if c in "89":
            return _Escape(i + 2, code=ord(c))
        end = i + 1
        while end < min(i + 4, len(src)) and src[end] in _OCT:
            end += 1
        return _Escape(end, code=self.byte_value(int(src[i + 1 : end], 8), i + 1))

    def hex_escape(self, i: int) -> _Escape:
        src = self.src
        j = i + 2
        if src.startswith("{", j):
            end = j + 1
            while end < len(src) and src[end] in _HEX:
                end += 1
            if not src.startswith("}", end):
                raise PcreError("non-hex character in \\x{} (closing brace missing?)", end)
            if end == j + 1:
                raise PcreError("digits missing in \\x{} or \\o{}", end)
            return _Escape(end + 1, code=self.byte_value(int(src[j + 1 : end], 16), j))
        end = j
        while end < min(j + 2, len(src)) and src[end] in _HEX:
            end += 1
        return _Escape(end, code=int(src[j:end] or "0", 16))

    def g_reference(self, i: int) -> _Escape:
        src = self.src
        j = i + 2
        if src.startswith(("<", "'"), j):
            raise PcreError("subroutine calls (\\g<…>) are not supported", j)
        match = _G_REF.match(src, j)
        if match is None:
            raise PcreError("a numbered reference must not be zero", j)
        ref = match.group(1) or match.group(2)
        if not ref.lstrip("-").isdigit():
            return _Escape(match.end(), python=f"(?P={ref})")
        number = int(ref)
        if ref.startswith("-"):
            number = self.groups + number + 1
        if number <= 0:
            raise PcreError("a numbered reference must not be zero", j)
        return _Escape(match.end(), python=f"(?:\\{number})")

    @staticmethod
    def byte_value(value: int, pos: int) -> int:
        if value > 0xFF:
            raise PcreError("character value in \\x{} or \\o{} is too large", pos)
        return value

    # -- character classes --------------------------------------------------------------

    def char_class(self, start: int) -> int:  # noqa: C901 - mirrors PCRE's class reader
        src = self.src
        if src[start + 1 : start + 2] in (":", ".", "=") and self.posix_class(start) is not None:
            raise PcreError("POSIX named classes are supported only within a class", start)
        i = start + 1
        negate = src.startswith("^", i)
        if negate:
            i += 1
        codes: set[int] = set()
        python: list[str] = []
        first = True
        while True:
            if i >= len(src):
                raise PcreError("missing terminating ] for character class", len(src))
            c = src[i]
            if c == "]" and not first:
                i += 1
                break
            first = False
            if c == "[" and i + 1 < len(src) and src[i + 1] in ":.=":
                posix = self.posix_class(i)
                if posix is not None:
                    extra, i = posix
                    codes |= extra
                    continue
            if c == "\\" and src.startswith("\\Q", i):
                end = src.find("\\E", i + 2)
                stop = len(src) if end < 0 else end
                codes.update(ord(ch) for ch in src[i + 2 : stop])
                i = len(src) if end < 0 else end + 2
                continue
            if c == "\\" and src.startswith("\\E", i):
                i += 2
                continue
            if c == "\\":
                if i + 1 >= len(src):
                    raise PcreError("\\ at end of pattern", i + 1)
                esc = self.read_escape(i, in_class=True)
                if esc.codes is not None:
                    codes |= esc.codes
                    i = esc.end
                    continue
                if esc.python is not None:
                    python.append(esc.python)
                    i = esc.end
                    continue
                low, i = esc.code or 0, esc.end
            else:
                low, i = ord(c), i + 1
            if src.startswith("-", i) and i + 1 < len(src) and src[i + 1] != "]":
                high, i = self.range_end(i + 1)
                if high < low:
                    raise PcreError("range out of order in character class", i - 1)
                codes.update(range(low, high + 1))
            else:
                codes.add(low)
        body = _set_text(frozenset(codes)) + "".join(python)
        self.other(f"[{'^' if negate else ''}{body}]", start)
        return i

    def range_end(self, i: int) -> tuple[int, int]:
        src = self.src
        if src[i] == "[" and src[i + 1 : i + 2] in (":", ".", "=") and self.posix_class(i):
            raise PcreError("invalid range in character class", i)
        if src[i] != "\\":
            return ord(src[i]), i + 1
        if i + 1 >= len(src):
            raise PcreError("\\ at end of pattern", i + 1)
        esc = self.read_escape(i, in_class=True)
        if esc.code is None:
            raise PcreError("invalid range in character class", esc.end - 1)
        return esc.code, esc.end

    def posix_class(self, i: int) -> tuple[frozenset[int], int] | None:
        """``[:name:]`` (or collating ``[.x.]``/``[=x=]``) at ``i``, per PCRE's own check."""
        src = self.src
        terminator = src[i + 1]
        j = i + 2
        while j < len(src):
            if src[j] == "\\" and j + 1 < len(src) and src[j + 1] in "]\\":
                j += 2
                continue
            if (src[j] == "[" and src.startswith(terminator, j + 1)) or src[j] == "]":
                return None
            if src[j] == terminator and src.startswith("]", j + 1):
                break
            j += 1
        else:
            return None
        if terminator != ":":
            raise PcreError("POSIX collating elements are not supported", i)
        name = src[i + 2 : j]
        negate = name.startswith("^")
        codes = _POSIX.get(name[1:] if negate else name)
        if codes is None:
            raise PcreError("unknown POSIX class name", i + 2)
        return (_ALL - codes if negate else codes), j + 2

    # -- groups -------------------------------------------------------------------------

    def open_group(self, i: int) -> int:  # noqa: C901 - one branch per (?…) form
        src = self.src
        if (
            src.startswith("(*", i)
            and i + 2 < len(src)
            and (src[i + 2].isupper() or src[i + 2] == ":")
        ):
            return self.verb(i)
        if not src.startswith("(?", i):
            self.groups += 1
            return self.push("(", i, i + 1)
        j = i + 2
        rest = src[j : j + 2]
        if rest[:1] == "#":
            close = src.find(")", j)
            if close < 0:
                raise PcreError("missing ) after comment", len(src))
            # transparent, except that it separates a quantifier from a '+'/'?' suffix
            self.unrepeatable = self.unrepeatable or self.quantified
            return close + 1
        if rest[:1] in (":", "=", "!", ">") or rest in ("<=", "<!"):
            width = 1 if rest[:1] in ":=!>" else 2
            return self.push(src[i : j + width], i, j + width)
        named = _GROUP_NAME.match(src, j)
        if named is not None:
            self.groups += 1
            name = named.group(named.lastindex or 1)
            return self.push(f"(?P<{name}>", i, named.end())
        if src.startswith("P=", j):
            close = src.find(")", j)
            if close < 0:
                raise PcreError("syntax error in subpattern name (missing terminator)", j)
            self.other(f"(?P={src[j + 2 : close]})", i)
            return close + 1
        if rest[:1] == "(":
            return self.conditional(i)
        if rest[:1] == "|":
            raise PcreError("branch reset groups (?|…) are not supported", j)
        if rest[:1] in ("R", "&", "+") or rest[:1].isdigit() or re.match(r"P>|-[0-9]", rest):
            raise PcreError("recursion and subroutine calls are not supported", j)
        if rest[:1] == "C":
            raise PcreError("callouts (?C) are not supported", j)
        return self.options(i)

    def options(self, i: int) -> int:
        src = self.src
        match = _OPTIONS.match(src, i + 2)
        if match is None:
            raise PcreError("unrecognized character after (? or (?-", i + 2)
        on, off = set(match.group(1)), set(match.group(2) or "")
        for letter in sorted(on | off):
            if letter in "xUJX":
                raise PcreError(f"option (?{letter}) is not supported", i + 2)
            if letter not in "ims":
                raise PcreError("unrecognized character after (? or (?-", i + 2)
        on -= off
        flags = "".join(sorted(on)) + ("-" + "".join(sorted(off)) if off else "")
        frame = self.frames[-1]
        multiline = "m" in on or (frame.multiline and "m" not in off)
        if match.group(3) == ":":
            end = self.push(f"(?{flags}:" if flags else "(?:", i, match.end())
            self.frames[-1].multiline = multiline
            return end
        if flags:  # (?i) inside a group: PCRE scopes it to the rest of that group
            scope = f"(?{flags}:"
            frame.scopes.append(scope)
            frame.multiline = multiline
            self.other(scope, i)
        return match.end()

    def conditional(self, i: int) -> int:
        src = self.src
        j = i + 3
        match = _CONDITION.match(src, j)
        if match is None or (match.group(4) or "").startswith(("R", "DEFINE")):
            raise PcreError("only (?(n)…) and (?(name)…) conditions are supported", j)
        ref = match.group(match.lastindex or 1)
        if ref[0] == "-":
            number = self.groups + int(ref) + 1
            if number <= 0:
                raise PcreError("reference to non-existent subpattern", j)
            ref = str(number)
        return self.push(f"(?({ref})", i, match.end())

    def verb(self, i: int) -> int:
        src = self.src
        close = src.find(")", i)
        name = src[i + 2 : close] if close > 0 else ""
        if name in ("F", "FAIL"):
            self.other("(?!)", i)
            return close + 1
        raise PcreError("(*VERB) and (*OPTION) items are not supported", i + 2)

    def push(self, text: str, src_pos: int, end: int) -> int:
        self.other(text, src_pos)
        self.frames.append(_Frame(multiline=self.frames[-1].multiline))
        return end

    def close_group(self, i: int) -> int:
        if len(self.frames) == 1:
            raise PcreError("unmatched parentheses", i)
        frame = self.frames.pop()
        self.other(")" * len(frame.scopes) + ")", i)
        return i + 1
