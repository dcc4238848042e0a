"""bytes → Message: start line, header lines (with folding), Content-Length and body.

Step ② of the data path: from the transport (one UDP datagram or one framed TCP message) to
sanity. Only the start line, the header names and Content-Length are examined here; every
other header is decoded lazily by ``Message`` when a later step asks for it (RFC 3261 §7, §18.3,
§25). Raises ``ParseError`` — the only exception this module lets out.

With the compiled core, `pks.sip._split` (C) cuts the usual message in one pass — start line,
header lines, Content-Length, the empty line — and this module builds the ``Message`` from its
result; whatever it leaves (a folded line, a name not seen yet, anything malformed) is read
here, the pure core's only way, which also says what is wrong.

Bound: at most ``max_headers`` header fields (`MAX_HEADERS`, ``PKS_MAX_HEADERS`` through
`configure`). A message with more is refused — 400 "Too Many Headers" — before any Header
is built and without cutting the lines past the limit; the C splitter stops at the same
number and leaves such a message here.
"""

from __future__ import annotations

import re
from typing import Any, Final

from pks.sip import names
from pks.sip.errors import ParseError
from pks.sip.message import Header, Message

try:  # the optional accelerator (pks/sip/_split.c): the common case of parse's loops in C
    from pks.sip._split import split_message as _c_split
except ImportError:  # not built (pure Python): _start_line, _split_headers, _content_length
    _c_split = None  # type: ignore[assignment]

MAX_HEADERS: Final = 256
"""Default bound on a message's header fields: a usual INVITE has 10-20, a large one 60."""
TOO_MANY_HEADERS: Final = "Too Many Headers"
_REPLY_LINES: Final = 32  # header lines read for the reply to a message with too many

_max_headers = MAX_HEADERS  # header fields a message may have (`configure`)

_TOKEN: Final = re.compile(rb"[A-Za-z0-9\-.!%*_+`'~]+\Z")
_VERSION: Final = re.compile(rb"SIP/\d+\.\d+\Z", re.I)
# raw header name (as written, with any blanks before ':') → key
_keys: Final[dict[bytes, str]] = {}
_methods: Final[dict[bytes, str]] = {}  # method token already checked → its text
# The per-line bytes methods, bound once: compiled code calls them directly, where
# ``line.partition(…)`` would look the method up on every line.
_partition: Final = bytes.partition
_strip: Final = bytes.strip


def _header_key(name: bytes) -> str:
    """The key of a raw header name; validates and remembers names not seen before."""
    key = _keys.get(name)
    if key is None:
        bare = name.rstrip(b" \t")
        if not bare:
            raise ParseError("header line without a name")
        if not _TOKEN.match(bare):
            raise ParseError(f"bad header name {bare[:40]!r}")
        key = names.key(bare)
        if len(_keys) < 4096:
            _keys[name] = key
    return key


def configure(*, max_headers: int = MAX_HEADERS) -> None:
    """Set the parser's bounds (the server, from ``PKS_MAX_HEADERS``)."""
    global _max_headers
    if max_headers < 1:
        raise ValueError(f"max_headers must be at least 1, not {max_headers}")
    _max_headers = max_headers


def header_limit() -> int:
    """The header-field bound in force."""
    return _max_headers


def _more_fields(lines: list[bytes], limit: int) -> bool:
    """``lines``: a header section cut at its first ``limit`` CRLFs (the last item is the
    uncut rest). Does it hold more than ``limit`` fields? Continuation lines (folding) are
    not fields; the rest is cut only as far as the answer needs."""
    allowed = limit
    while True:
        rest = lines.pop()
        for line in lines:
            if line[:1] not in (b" ", b"\t"):
                allowed -= 1
        if allowed == 0:  # any field in the rest is one too many: usually its first line
            return rest[:1] not in (b" ", b"\t") or any(
                line[:1] not in (b" ", b"\t") for line in rest.split(b"\r\n")
            )
        lines = rest.split(b"\r\n", allowed)
        if len(lines) <= allowed:
            return False


def _first_lines(head: bytes, count: int) -> bytes:
    """The first ``count`` lines of a header section."""
    rest = head.split(b"\r\n", count)
    return head if len(rest) <= count else head[: len(head) - len(rest[-1]) - 2]


def _reply_partial(first: bytes, head: bytes) -> Message | None:
    """What the 400 to a request with too many header fields needs, from its first lines only
    (Via, From, To, Call-ID and CSeq come first in practice; else there is no reply)."""
    if first.startswith(b"SIP/"):
        return None  # a response is never answered
    try:
        headers = _split_headers(_first_lines(head, _REPLY_LINES), _REPLY_LINES)
    except ParseError:
        return None
    method = first.split(b" ", 1)[0].decode("latin-1")
    return Message(first, headers, b"", method=method, ruri="")


def _split_headers(head: bytes, limit: int = MAX_HEADERS) -> list[Header]:
    """Header lines → Header values; the common case (no folded line) in one tight loop.
    More than ``limit`` fields: ParseError "Too Many Headers", the lines past the limit not
    even cut (the cut stops at ``limit`` CRLFs; the rest is only counted if folded)."""
    if not head:
        return []
    lines = head.split(b"\r\n", limit)
    if len(lines) > limit:  # more lines than fields allowed: only folding could save it
        if _more_fields(lines, limit):
            raise ParseError(TOO_MANY_HEADERS)
        return _split_folded(head)
    headers: list[Header] = []
    for line in lines:
        name, colon, value = _partition(line, b":")
        key = _keys.get(name)  # never a continuation line: no known name starts with SP/HTAB
        if key is None or not colon:  # a known name alone on its line is no header either
            if line[:1] in (b" ", b"\t"):  # folding (rare): start over the general way
                return _split_folded(head)
            if not colon:
                raise ParseError(f"header line without a name: {line[:40]!r}")
            key = _header_key(name)
        headers.append(Header(key, line, _strip(value)))
    return headers


def _split_folded(head: bytes) -> list[Header]:
    """The general case: continuation lines (RFC 3261 §7.3.1 folding) joined to their header.

    Each header's lines are gathered first and joined once: appending every continuation to
    the header as it came would copy the header again per line (quadratic in a message that
    folds thousands of times)."""
    groups: list[list[bytes]] = []
    for line in head.split(b"\r\n"):
        first = line[:1]
        if first == b" " or first == b"\t":
            if not groups:
                raise ParseError("continuation line before any header")
            groups[-1].append(line)
            continue
        if line.find(b":") <= 0:
            raise ParseError(f"header line without a name: {line[:40]!r}")
        groups.append([line])
    headers: list[Header] = []
    for lines in groups:
        line = lines[0]
        colon = line.find(b":")
        value = line[colon + 1 :].strip()
        raw = line
        if len(lines) > 1:
            raw = b"\r\n".join(lines)
            parts = [value, *[more.strip() for more in lines[1:]]]
            value = b" ".join([part for part in parts if part])
        headers.append(Header(_header_key(line[:colon]), raw, value))
    return headers


def _start_line(line: bytes) -> tuple[str | None, str | None, int | None, str | None]:
    """(method, request-URI, status, reason) of a request line or a status line."""
    if line.startswith(b"SIP/"):
        parts = line.split(b" ", 2)
        if parts[0] != b"SIP/2.0":
            raise ParseError(f"unsupported SIP version {parts[0]!r}", status=505)
        if len(parts) < 2 or len(parts[1]) != 3 or not parts[1].isdigit():
            raise ParseError(f"bad status code in {line[:60]!r}")
        code = int(parts[1])
        if not 100 <= code <= 699:
            raise ParseError(f"status code {code} out of range")
        reason = parts[2].decode("utf-8", "replace") if len(parts) == 3 else ""
        return None, None, code, reason
    parts = line.split(b" ")
    if len(parts) != 3 or not parts[0] or not parts[1]:
        raise ParseError(f"malformed request line {line[:80]!r}")
    method, ruri, version = parts
    text = _methods.get(method)
    if text is None:  # a method not seen yet: checked once (a dict hit, not a regex, after)
        if not _TOKEN.match(method):
            raise ParseError(f"bad method {method[:40]!r}")
        text = method.decode("latin-1")
        if len(_methods) < 256:
            _methods[method] = text
    if version != b"SIP/2.0":
        if _VERSION.match(version):
            raise ParseError(f"unsupported SIP version {version.decode('latin-1')}", status=505)
        raise ParseError(f"malformed request line {line[:80]!r}")
    return text, ruri.decode("latin-1"), None, None


def _content_length(headers: list[Header]) -> int | None:
    value: int | None = None
    for h in headers:
        if h.key != "content-length":
            continue
        text = h.value
        if not text.isdigit():
            raise ParseError(f"bad Content-Length {text[:20]!r}")
        n = int(text)
        if value is not None and n != value:
            raise ParseError("conflicting Content-Length values")
        value = n
    return value


def _partial_request(first: bytes, head: bytes) -> Message | None:
    """What a 400/505 reply needs when the request line itself is bad."""
    try:
        headers = _split_headers(head, _max_headers)
    except ParseError:
        return None
    method = first.split(b" ", 1)[0].decode("latin-1")
    return Message(first, headers, b"", method=method, ruri="")


def _head(data: bytes, first_end: int, end: int) -> bytes:
    """The header section between the start line and the empty line (without either)."""
    return data[first_end + 2 : end] if first_end < end else b""


def _start(
    data: bytes, first: bytes, start: int, flat: list[Any] | None
) -> tuple[str | None, str | None, int | None, str | None]:
    """(method, request-URI, status, reason): from the accelerator's cut when it read a usual
    start line (and a request's method was checked once before), else by `_start_line` — a
    malformed request line's error then carries what a 400/505 reply needs."""
    if flat is not None:
        kind = flat[3]
        if kind > 0:
            return None, None, kind, first[flat[4] :].decode("utf-8", "replace")
        if kind < 0:
            method = _methods.get(data[: flat[4]])
            if method is not None:
                return method, data[flat[4] + 1 : flat[5]].decode("latin-1"), None, None
    try:
        return _start_line(first)
    except ParseError as exc:
        if not first.startswith(b"SIP/"):
            exc.partial = _partial_request(first, _head(data, len(first), start - 4))
        raise


def parse(data: bytes, *, stream: bool = False) -> Message:
    """Parse one message. ``stream`` means TCP: the framer already cut it to size."""
    limit = _max_headers
    # the accelerator cuts the lines, finds both ends and reads Content-Length in one pass;
    # past ``limit`` lines it stops and leaves the message to the count below
    flat = _c_split(data, _keys, "content-length", limit) if _c_split is not None else None
    if flat is None:  # pure Python, or something the accelerator leaves to us
        first_end = data.find(b"\r\n")
        end = data.find(b"\r\n\r\n")
        if end < 0:
            raise ParseError("no empty line ends the header section")
        start: int = end + 4
    else:
        first_end = flat[0]
        start = flat[1]
    first = data[:first_end]
    method, ruri, status, reason = _start(data, first, start, flat)
    if flat is not None:
        headers = [Header(flat[i], flat[i + 1], flat[i + 2]) for i in range(6, len(flat), 3)]
    else:
        head = _head(data, first_end, start - 4)
        try:
            headers = _split_headers(head, limit)
        except ParseError as exc:
            if exc.reason is TOO_MANY_HEADERS:
                exc.partial = _reply_partial(first, head)
            raise
    msg = Message(first, headers, b"", method=method, ruri=ruri, status=status, reason=reason)
    length: int | None
    if flat is not None:
        length = flat[2] if flat[2] >= 0 else None
    else:
        try:
            length = _content_length(headers)
        except ParseError as exc:
            exc.partial = msg
            raise
    if length is None:
        msg.body = data[start:]
    else:
        if start + length > len(data):
            raise ParseError(
                f"Content-Length {length} larger than the {len(data) - start} body bytes",
                partial=msg,
            )
        # RFC 3261 §18.3: octets after Content-Length in a datagram are discarded.
        msg.body = data[start : start + length]
    return msg
