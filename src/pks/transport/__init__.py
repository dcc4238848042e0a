"""Step ①: the asyncio I/O edge. Bytes in from named UDP/TCP sockets, `Send` effects out.

The only package of the data path that touches sockets and asyncio, kept thin and callback
based (``DatagramProtocol``/``Protocol``, no streams):

- ``listen``: binds the sockets of PKS_LISTEN and learns their real ports;
- ``udp``: one datagram = one message (RFC 3261 §18.1.2, §18.2.1);
- ``tcp``: one protocol per connection, `pks.sip.framing` cuts the stream (RFC 3261 §18.3),
  CRLF keep-alives (RFC 5626), idle timeout, the connection table for reuse;
- ``send``: carries out `Send` effects, reusing or opening TCP connections;
- ``manager``: `Transport`, the four calls the server uses.
"""

from pks.transport.callbacks import MessageHandler, SendErrorHandler
from pks.transport.manager import Transport

__all__ = ["MessageHandler", "SendErrorHandler", "Transport"]
