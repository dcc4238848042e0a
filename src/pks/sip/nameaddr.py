"""name-addr / addr-spec with display name and parameters (RFC 3261 §20.10, §20.20, §20.39, §25.1).

Part of step ② (parse). Used for From, To, Contact, Route and Record-Route values. In the
addr-spec form (no ``<>``) every ``;param`` belongs to the header, not to the URI (RFC 3261
§20.10), and the URI may not carry ``?headers`` or ``,``.
"""

from __future__ import annotations

import re
from typing import Final

from pks.sip.errors import ParseError
from pks.sip.memo import Memo
from pks.sip.params import Params, get_param, parse_params
from pks.sip.record import Record
from pks.sip.uri import Uri, parse_uri

_TOKEN_WORDS: Final = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+(?:[ \t]+[A-Za-z0-9\-.!%*_+`'~]+)*\Z")


class NameAddr(Record):
    """A parsed name-addr: display name (unquoted), URI, header params."""

    __slots__ = ("bracketed", "display", "params", "uri")

    def __init__(self, display: str | None, uri: Uri, params: Params, bracketed: bool) -> None:
        self.display = display
        self.uri = uri
        self.params = params
        self.bracketed = bracketed

    def _fields(self) -> tuple[object, ...]:
        return (self.display, self.uri, self.params, self.bracketed)

    @property
    def tag(self) -> str | None:
        return get_param(self.params, "tag")

    def param(self, name: str) -> str | None:
        return get_param(self.params, name)


def _quoted(text: str) -> tuple[str, str]:
    """Parse a quoted string at the start of ``text``; return (content, rest)."""
    i = 1
    out: list[str] = []
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n:
            out.append(text[i + 1])
            i += 2
            continue
        if c == '"':
            return "".join(out), text[i + 1 :]
        out.append(c)
        i += 1
    raise ParseError("unterminated quoted display name")


_parsed: Final[Memo[NameAddr]] = Memo(8192)


def parse_name_addr(text: str) -> NameAddr:
    """Parse one name-addr or addr-spec value (with its header params); memoized (`Memo`):
    every message of a call repeats its From and To, ``NameAddr`` is immutable."""
    addr = _parsed.get(text)
    return _parsed.put(text, _parse_name_addr(text)) if addr is None else addr


def _parse_name_addr(text: str) -> NameAddr:
    text = text.strip()
    if not text:
        raise ParseError("empty address")
    display: str | None = None
    if text.startswith('"'):
        display, text = _quoted(text)
        text = text.lstrip()
        if not text.startswith("<"):
            raise ParseError("quoted display name not followed by <URI>")
    lt = text.find("<")
    if lt >= 0:
        if lt > 0:
            words = text[:lt].strip()
            if words and not _TOKEN_WORDS.match(words):
                raise ParseError(f"display name {words!r} must be quoted")
            display = words or display
        gt = text.find(">", lt)
        if gt < 0:
            raise ParseError("missing '>' after URI")
        uri_text = text[lt + 1 : gt]
        if uri_text != uri_text.strip():
            raise ParseError("spaces inside <addr-spec>")
        rest = text[gt + 1 :].strip()
        if rest and not rest.startswith(";"):
            raise ParseError(f"unexpected text after '>': {rest!r}")
        return NameAddr(display, parse_uri(uri_text), parse_params(rest), True)
    uri_text, semi, rest = text.partition(";")
    uri_text = uri_text.strip()
    if "?" in uri_text or "," in uri_text or " " in uri_text:
        raise ParseError(f"URI {uri_text!r} must be enclosed in <> (RFC 3261 §20)")
    return NameAddr(None, parse_uri(uri_text), parse_params(rest) if semi else (), False)
