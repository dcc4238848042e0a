"""Header-name table: compact forms, canonical spelling, which headers are comma lists.

Header names are compared case-insensitively (RFC 3261 §7.3.1). Inside pks a header is keyed by
its lower-case long form; ``canonical()`` gives the spelling we use when we write one.
"""

from __future__ import annotations

from typing import Final

COMPACT: Final[dict[str, str]] = {
    "i": "call-id",
    "m": "contact",
    "e": "content-encoding",
    "l": "content-length",
    "c": "content-type",
    "f": "from",
    "s": "subject",
    "k": "supported",
    "t": "to",
    "v": "via",
    "o": "event",
    "r": "refer-to",
    "b": "referred-by",
    "u": "allow-events",
    "a": "accept-contact",
    "j": "reject-contact",
    "d": "request-disposition",
    "x": "session-expires",
    "y": "identity",
    "n": "identity-info",
}

_SPELLING: Final[dict[str, str]] = {
    "call-id": "Call-ID",
    "cseq": "CSeq",
    "www-authenticate": "WWW-Authenticate",
    "mime-version": "MIME-Version",
}

#: Headers whose values are comma-separated lists we split (RFC 3261 §7.3.1).
LIST_HEADERS: Final = frozenset(
    {"via", "route", "record-route", "contact", "proxy-require", "require"}
)

#: Headers that must appear at most once in a request (RFC 3261 §20, RFC 4475 §3.3.8).
SINGLE_HEADERS: Final = frozenset(
    {"from", "to", "call-id", "cseq", "max-forwards", "content-length"}
)

_cache: Final[dict[bytes, str]] = {}


def key(raw: bytes) -> str:
    """Lower-case long form of a raw header name (``b"v"`` → ``"via"``)."""
    k = _cache.get(raw)
    if k is None:
        low = raw.decode("latin-1").lower()
        k = COMPACT.get(low, low)
        if len(_cache) < 4096:
            _cache[raw] = k
    return k


def canonical(name: str) -> str:
    """The spelling we write for a header key (``"call-id"`` → ``"Call-ID"``)."""
    spelled = _SPELLING.get(name)
    if spelled is None:
        spelled = "-".join(part.capitalize() for part in name.split("-"))
    return spelled


_PREFIX: Final[dict[str, bytes]] = {}


def line_prefix(name: str) -> bytes:
    """``b"Name: "`` for a header key: what starts a header line we write."""
    prefix = _PREFIX.get(name)
    if prefix is None:
        prefix = canonical(name).encode() + b": "
        if len(_PREFIX) < 4096:
            _PREFIX[name] = prefix
    return prefix
