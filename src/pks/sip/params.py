"""Generic header-parameter and list splitting shared by Via and name-addr parsing.

Part of step ② (parse). Splits ``;name=value`` parameter lists and comma-separated header
values while respecting quoted strings and ``<…>`` (RFC 3261 §7.3.1, §25.1).
"""

from __future__ import annotations

from pks.sip.errors import ParseError

Params = tuple[tuple[str, str | None], ...]


def split_top(text: str, sep: str) -> list[str]:
    """Split ``text`` on ``sep`` outside quoted strings and angle brackets."""
    if sep not in text and "\\" not in text:  # one element (no escape: quotes pair up)
        if text.count('"') % 2:
            raise ParseError("unterminated quoted string")
        return [text]
    if '"' not in text and "<" not in text:
        return text.split(sep)
    return _split_quoted(text, sep)


def _split_quoted(text: str, sep: str) -> list[str]:
    parts: list[str] = []
    depth = 0
    quoted = False
    start = 0
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if quoted:
            if c == "\\":
                i += 1
            elif c == '"':
                quoted = False
        elif c == '"':
            quoted = True
        elif c == "<":
            depth += 1
        elif c == ">":
            depth -= 1
        elif c == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    if quoted:
        raise ParseError("unterminated quoted string")
    parts.append(text[start:])
    return parts


def parse_params(text: str) -> Params:
    """``;a=1;b`` (leading ';' optional) → (("a","1"),("b",None)); names lower-cased."""
    text = text.strip()
    if not text:
        return ()
    if text.startswith(";"):
        text = text[1:]
    out: list[tuple[str, str | None]] = []
    for part in split_top(text, ";"):
        name, eq, value = part.partition("=")
        name = name.strip()
        if not name.isalnum() and (not name or any(c in name for c in ' \t"<>,')):
            raise ParseError(f"bad parameter {part.strip()!r}")
        out.append((name.lower(), value.strip() if eq else None))
    return tuple(out)


def get_param(params: Params, name: str) -> str | None:
    for k, v in params:
        if k == name:
            return "" if v is None else v
    return None
