"""Step ②: the sans-IO SIP message layer, bytes ↔ Message (RFC 3261 §7, §19, §20, §25).

``parse`` turns bytes into a ``Message`` whose headers are decoded lazily; ``Message.copy`` +
edits + ``to_bytes`` write it back with untouched headers byte-identical; ``build.response``
writes local replies. ``ParseError`` is the only error raised.
"""

from pks.sip.build import local_tag, response
from pks.sip.errors import ParseError
from pks.sip.message import CSeq, Header, Message
from pks.sip.nameaddr import NameAddr, parse_name_addr
from pks.sip.parse import parse
from pks.sip.status import reason
from pks.sip.uri import Uri, format_host, parse_uri
from pks.sip.via import MAGIC, Via, parse_via

__all__ = [
    "MAGIC",
    "CSeq",
    "Header",
    "Message",
    "NameAddr",
    "ParseError",
    "Uri",
    "Via",
    "format_host",
    "local_tag",
    "parse",
    "parse_name_addr",
    "parse_uri",
    "parse_via",
    "reason",
    "response",
]
