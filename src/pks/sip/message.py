"""Request/Response: header lines kept as received, values decoded on first access.

Part of step ② (parse). A ``Message`` holds its header lines as ``Header`` entries over the
original bytes; serialising an unedited message gives the input back byte for byte. The proxy
edits a ``copy()``: inserted, removed or rewritten lines are the only ones that change, every
other header leaves exactly as it came, in the same order (RFC 3261 §16.6 asks no more).

Parsed views (Via list, From/To, CSeq, Contact, Route…) are computed once, on first use, and
raise ``ParseError`` when the header is malformed.
"""

from __future__ import annotations

from typing import Final

from pks.sip import names
from pks.sip.errors import ParseError
from pks.sip.nameaddr import NameAddr, parse_name_addr
from pks.sip.params import split_top
from pks.sip.record import Record
from pks.sip.uri import Uri, parse_uri
from pks.sip.via import Via, parse_via

CRLF: Final = b"\r\n"
_COMMA: Final = 44  # ord(","): an int, to search bytes with ``in`` (see replace_first_value)
_QUOTE: Final = 34  # ord('"')
MAX_CSEQ: Final = 2**32 - 1


class Header:
    """One header line: its key (lower-case long name), its bytes as on the wire, its value."""

    __slots__ = ("key", "raw", "value")

    def __init__(self, key: str, raw: bytes, value: bytes) -> None:
        self.key = key
        self.raw = raw
        self.value = value

    @staticmethod
    def make(key: str, value: bytes | str) -> Header:
        """A header line we write: ``Name: value``."""
        v = value.encode("latin-1") if isinstance(value, str) else value
        return Header(key, names.line_prefix(key) + v, v)

    def __repr__(self) -> str:
        return f"Header({self.raw!r})"


class CSeq(Record):
    __slots__ = ("method", "number")

    def __init__(self, number: int, method: str) -> None:
        self.number = number
        self.method = method

    def _fields(self) -> tuple[object, ...]:
        return (self.number, self.method)


def _elements(header: Header, key: str) -> list[str]:
    """The comma-separated elements of one header line (none of them empty)."""
    parts = split_top(header.value.decode("latin-1"), ",")
    for part in parts:
        if not part.strip():
            raise ParseError(f"empty element in {names.canonical(key)} header")
    return parts


class Message:
    """A SIP request (``method`` set) or response (``status`` set)."""

    __slots__ = (
        "_contacts",
        "_cseq",
        "_from",
        "_mf",
        "_routes",
        "_rr",
        "_to",
        "_top",
        "_uri",
        "_vias",
        "body",
        "first_line",
        "headers",
        "method",
        "reason",
        "ruri",
        "status",
    )

    def __init__(
        self,
        first_line: bytes,
        headers: list[Header],
        body: bytes,
        *,
        method: str | None = None,
        ruri: str | None = None,
        status: int | None = None,
        reason: str | None = None,
    ) -> None:
        self.first_line = first_line
        self.headers = headers
        self.body = body
        self.method = method
        self.ruri = ruri
        self.status = status
        self.reason = reason
        self._clear_cache()

    def _clear_cache(self) -> None:
        self._vias: list[Via] | None = None
        self._top: Via | None = None
        self._from: NameAddr | None = None
        self._to: NameAddr | None = None
        self._cseq: CSeq | None = None
        self._uri: Uri | None = None
        self._contacts: list[NameAddr] | None = None
        self._routes: list[NameAddr] | None = None
        self._rr: list[NameAddr] | None = None
        self._mf = -2  # Max-Forwards: -2 not read yet, -1 absent

    # ---- generic access -------------------------------------------------------------
    @property
    def is_request(self) -> bool:
        return self.method is not None

    def get(self, key: str) -> bytes | None:
        """Value of the first header with this key, or None."""
        for h in self.headers:
            if h.key == key:
                return h.value
        return None

    def get_str(self, key: str) -> str | None:
        v = self.get(key)
        return None if v is None else v.decode("latin-1")

    def count(self, key: str) -> int:
        return sum(1 for h in self.headers if h.key == key)

    def values(self, key: str) -> list[str]:
        """All comma-separated elements of every header line with this key, in order."""
        out: list[str] = []
        for h in self.headers:
            if h.key == key:
                out += _elements(h, key)
        return out

    # ---- parsed views ---------------------------------------------------------------------
    @property
    def uri(self) -> Uri:
        """The parsed Request-URI."""
        if self._uri is None:
            if self.ruri is None:
                raise ParseError("a response has no Request-URI")
            self._uri = parse_uri(self.ruri)
        return self._uri

    @property
    def vias(self) -> list[Via]:
        if self._vias is None:
            values = self.values("via")
            if not values:
                raise ParseError("missing Via header")
            top = self._top  # already parsed alone: not twice
            vias = [parse_via(v) for v in values[1:]]
            vias.insert(0, top if top is not None else parse_via(values[0]))
            self._vias = vias
        return self._vias

    @property
    def top_via(self) -> Via:
        """The first Via, parsed alone (the others are parsed only when ``vias`` is read)."""
        if self._vias is not None:
            return self._vias[0]
        top = self._top
        if top is None:
            first = next((h for h in self.headers if h.key == "via"), None)
            if first is None:
                raise ParseError("missing Via header")
            top = self._top = parse_via(_elements(first, "via")[0])
        return top

    def _single_addr(self, key: str) -> NameAddr:
        v = self.get_str(key)
        if v is None:
            raise ParseError(f"missing {names.canonical(key)} header")
        return parse_name_addr(v)

    @property
    def from_(self) -> NameAddr:
        if self._from is None:
            self._from = self._single_addr("from")
        return self._from

    @property
    def to(self) -> NameAddr:
        if self._to is None:
            self._to = self._single_addr("to")
        return self._to

    @property
    def call_id(self) -> str:
        v = self.get_str("call-id")
        if v is None or not v.strip():
            raise ParseError("missing Call-ID header")
        return v.strip()

    @property
    def cseq(self) -> CSeq:
        if self._cseq is None:
            v = self.get_str("cseq")
            if v is None:
                raise ParseError("missing CSeq header")
            parts = v.split()
            if len(parts) != 2 or not (parts[0].isascii() and parts[0].isdigit()):
                raise ParseError(f"malformed CSeq {v!r}")
            number = int(parts[0])
            if number > MAX_CSEQ:
                raise ParseError(f"CSeq number {parts[0]} exceeds 2**32-1")
            self._cseq = CSeq(number, parts[1])
        return self._cseq

    @property
    def max_forwards(self) -> int | None:
        mf = self._mf
        if mf == -2:
            v = self.get("max-forwards")
            if v is None:
                mf = -1
            else:
                v = v.strip()
                if not v.isdigit() or len(v) > 5:
                    raise ParseError(f"malformed Max-Forwards {v!r}")
                mf = int(v)
            self._mf = mf
        return None if mf == -1 else mf

    @property
    def contacts(self) -> list[NameAddr]:
        """Contact values; an empty list for ``Contact: *`` or no Contact."""
        if self._contacts is None:
            vals = self.values("contact")
            if len(vals) == 1 and vals[0].strip() == "*":
                self._contacts = []
            else:
                self._contacts = [parse_name_addr(v) for v in vals]
        return self._contacts

    @property
    def routes(self) -> list[NameAddr]:
        if self._routes is None:
            self._routes = [parse_name_addr(v) for v in self.values("route")]
        return self._routes

    @property
    def record_routes(self) -> list[NameAddr]:
        if self._rr is None:
            self._rr = [parse_name_addr(v) for v in self.values("record-route")]
        return self._rr

    @property
    def from_tag(self) -> str | None:
        return self.from_.tag

    @property
    def to_tag(self) -> str | None:
        return self.to.tag

    # ---- editing (on a copy) ------------------------------------------------------------
    def copy(self) -> Message:
        """A copy whose header list can be edited without touching this one."""
        m = Message(
            self.first_line,
            list(self.headers),
            self.body,
            method=self.method,
            ruri=self.ruri,
            status=self.status,
            reason=self.reason,
        )
        m._vias, m._top, m._from, m._to, m._cseq, m._uri = (
            self._vias,
            self._top,
            self._from,
            self._to,
            self._cseq,
            self._uri,
        )
        m._contacts, m._routes, m._rr = self._contacts, self._routes, self._rr
        m._mf = self._mf
        return m

    def prepend(self, key: str, value: bytes | str) -> None:
        """Insert a header line above all others (Via, Record-Route go on top)."""
        self.headers.insert(0, Header.make(key, value))
        self._invalidate(key)

    def prepend_header(self, header: Header) -> None:
        """Insert a ready-made header line (never edited in place: it may be shared) on top."""
        self.headers.insert(0, header)
        self._invalidate(header.key)

    def append(self, key: str, value: bytes | str) -> None:
        self.headers.append(Header.make(key, value))
        self._invalidate(key)

    def set(self, key: str, value: bytes | str) -> None:
        """Replace the first header with this key in place (or append it)."""
        for i, h in enumerate(self.headers):
            if h.key == key:
                self.headers[i] = Header.make(key, value)
                self._invalidate(key)
                return
        self.append(key, value)

    def remove(self, key: str) -> None:
        self.headers = [h for h in self.headers if h.key != key]
        self._invalidate(key)

    def replace_first_value(self, key: str, new: str | None) -> None:
        """Rewrite the first comma element of the first ``key`` header (None removes it)."""
        for i, h in enumerate(self.headers):
            if h.key != key:
                continue
            value = h.value
            # one element: nothing to keep. ``int in bytes`` is a memchr; ``b"," in value``
            # would first try its operand as an int and build a TypeError it then discards,
            # ``value.find(b",")`` parse its arguments
            if _COMMA not in value and _QUOTE not in value:
                rest: list[str] = []
            else:
                parts = split_top(value.decode("latin-1"), ",")
                rest = [p.strip() for p in parts[1:]]
            elems = ([new] if new is not None else []) + rest
            if elems:
                self.headers[i] = Header.make(key, ", ".join(elems))
            else:
                del self.headers[i]
            self._invalidate(key)
            return

    def set_first_line(self, line: bytes) -> None:
        self.first_line = line

    def set_ruri(self, ruri: str) -> None:
        assert self.method is not None
        self.ruri = ruri
        self._uri = None
        self.first_line = f"{self.method} {ruri} SIP/2.0".encode("latin-1")

    def _invalidate(self, key: str) -> None:
        if key == "via":
            self._vias = None
            self._top = None
        elif key == "route":
            self._routes = None
        elif key == "record-route":
            self._rr = None
        elif key == "contact":
            self._contacts = None
        elif key == "to":
            self._to = None
        elif key == "from":
            self._from = None
        elif key == "max-forwards":
            self._mf = -2

    # ---- serialisation ------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """The message on the wire; Content-Length is kept right for the body we carry."""
        # one join (the empty line and the body as its last two parts): one copy of the bytes
        lines = [self.first_line]
        for h in self.headers:
            lines.append(h.raw)
        lines.append(b"")
        lines.append(self.body)
        return CRLF.join(lines)
