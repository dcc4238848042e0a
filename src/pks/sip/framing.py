"""Step ① → ②: stream framing, a TCP byte stream cut into whole SIP messages (sans-IO).

The TCP transport feeds received bytes to a `StreamFramer`, one per connection, and hands each
complete message to the parser. No sockets, no clock: bytes in, bytes out.

RFC 3261 §18.3: on a stream, a message is its header section up to the first empty line
(CRLFCRLF) followed by exactly Content-Length body bytes, and Content-Length is mandatory.
RFC 3261 §7.5: CRLFs before a start line are ignored. RFC 5626 §3.5.1: a CRLFCRLF between
messages is a keep-alive "ping" that the receiver answers with a CRLF "pong"; `pings` says
how many were seen so the transport can answer.

Invariants: at most ``max_message_size`` bytes are buffered for one message; the header
section is scanned once per message (the search resumes where the last one stopped); a
`FramingError` means the stream cannot be resynchronised and the connection must be closed.
"""

from __future__ import annotations

import re

__all__ = ["FramingError", "StreamFramer"]

_CRLF = b"\r\n"
_END_OF_HEADERS = b"\r\n\r\n"
# Leading keep-alive bytes. A lone LF is tolerated and skipped but never counts as a ping.
_LEADING_NEWLINES = re.compile(rb"[\r\n]+")
# Content-Length or its compact form "l" (RFC 3261 §7.3.3, §20.14), with optional blanks before
# the colon (HCOLON) and a possibly folded value. Searched from the CRLF that ends the start line.
_CONTENT_LENGTH = re.compile(
    rb"\r\n(?:content-length|l)[ \t]*:((?:[^\r\n]|\r\n[ \t])*)", re.IGNORECASE
)


class FramingError(ValueError):
    """The stream is not valid SIP framing; close the connection.

    ``messages`` holds the complete messages framed from the same `StreamFramer.feed` call
    before the error, so the transport can still deliver them.
    """

    def __init__(self, reason: str, messages: list[bytes] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.messages = messages or []


class StreamFramer:
    """Buffer for one connection: ``feed(bytes)`` → the complete messages, in order."""

    __slots__ = ("_buffer", "_crlf_pairs", "_max", "_message_length", "_scan_from", "pings")

    def __init__(self, max_message_size: int) -> None:
        self._max = max_message_size
        self._buffer = bytearray()
        self._scan_from = 0  # where the next CRLFCRLF search starts in the current message
        self._message_length: int | None = None  # known once the header section is complete
        self._crlf_pairs = 0  # keep-alive CRLFs seen since the last message or ping
        # RFC 5626 CRLFCRLF pings seen by the last feed() call; answer each with one CRLF.
        self.pings = 0

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return every message they complete (possibly none).

        Raises `FramingError` for a missing, negative, non-numeric or conflicting
        Content-Length, or for a message larger than ``max_message_size``.
        """
        self.pings = 0
        self._buffer += data
        messages: list[bytes] = []
        try:
            while self._buffer:
                message = self._next_message()
                if message is None:
                    break
                messages.append(message)
        except FramingError as exc:
            raise FramingError(exc.reason, messages) from None
        return messages

    @property
    def pending(self) -> bool:
        """True while bytes of an incomplete message (or a lone keep-alive CR) are held."""
        return bool(self._buffer)

    def _next_message(self) -> bytes | None:
        buffer = self._buffer
        if self._message_length is None:
            if buffer[0] in _CRLF and not self._skip_keepalives():
                return None
            header_end = buffer.find(_END_OF_HEADERS, self._scan_from)
            if header_end < 0:
                if len(buffer) > self._max:
                    raise FramingError(f"header section longer than {self._max} bytes")
                self._scan_from = max(0, len(buffer) - 3)
                return None
            body_start = header_end + len(_END_OF_HEADERS)
            self._message_length = body_start + _content_length(buffer, header_end)
            if self._message_length > self._max:
                raise FramingError(
                    f"message of {self._message_length} bytes exceeds {self._max} bytes"
                )
        length = self._message_length
        if len(buffer) < length:
            return None
        if len(buffer) == length:  # the usual case: one message per read, copy once
            message = bytes(buffer)
            buffer.clear()
        else:
            message = bytes(buffer[:length])
            del buffer[:length]
        self._message_length = None
        self._scan_from = 0
        return message

    def _skip_keepalives(self) -> bool:
        """Drop leading CRLFs, counting pings; True when a start line follows in the buffer."""
        buffer = self._buffer
        match = _LEADING_NEWLINES.match(buffer)
        assert match is not None  # the caller saw a CR or LF first
        end = match.end()
        if end == len(buffer) and buffer[-1] == _CRLF[0]:
            end -= 1  # a CR whose LF is still on the wire
        self._crlf_pairs += buffer.count(_CRLF, 0, end)
        self.pings += self._crlf_pairs // 2
        self._crlf_pairs %= 2
        del buffer[:end]
        if not buffer or buffer[0] in _CRLF:
            return False
        self._crlf_pairs = 0
        return True


def _content_length(buffer: bytearray, header_end: int) -> int:
    """The Content-Length of the header section ``buffer[:header_end]`` (RFC 3261 §18.3)."""
    # +2 keeps the CRLF that ends the last header line, so a header that is last matches too.
    values = {
        match.group(1).strip()
        for match in _CONTENT_LENGTH.finditer(buffer, 0, header_end + len(_CRLF))
    }
    if not values:
        raise FramingError("Content-Length missing (mandatory on stream transports)")
    if len(values) > 1:
        shown = ", ".join(sorted(repr(v.decode("latin-1")) for v in values))
        raise FramingError(f"conflicting Content-Length values: {shown}")
    value = values.pop()
    if value.isdigit():
        return int(value)
    if value.startswith(b"-") and value[1:].isdigit():
        raise FramingError(f"negative Content-Length: {value.decode('latin-1')}")
    raise FramingError(f"Content-Length is not a number: {value.decode('latin-1')!r}")
