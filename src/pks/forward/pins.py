"""TCP connections that live dialogs depend on, so the transport keeps them open.

Part of step ⑥, sans-IO bookkeeping beside the transactions (and apart from the call limits of
`pks.forward.calls`). A caller that reached us over TCP from behind a NAT gets
``;alias=IP~PORT~2`` on its Contact: requests towards it must come back on its connection,
since nothing listens at its source port. The transport closes connections idle for
``PKS_TCP_IDLE_TIMEOUT``; a call longer than that could then no longer be hung up from the far
side. So the proxy pins, per dialog, the connections the 2xx of its INVITE involved (the one
the INVITE came in on, the one the 2xx came back on); the transport's idle check asks
`DialogPins.pinned` before closing one.

A pin ends with the final response of its dialog's BYE (not a 401/407 challenge, after which
the BYE comes again), or ``max_duration`` seconds (``PKS_CALL_MAX_DURATION``) after it was set,
so a BYE we never saw cannot hold a connection forever. Time is the caller's ``now``: the
transport asks with the event loop's clock, which is the core's.

Worker processes: a message handed over from the worker holding its connection carries no
connection id, so only connections of the worker that handled the INVITE are pinned.
"""

from __future__ import annotations

from collections import deque

__all__ = ["DialogPins"]

DialogKey = tuple[str, str, str]  # Call-ID and the two tags, smaller first (either side's view)


class _Pin:
    """One dialog's connections (an explicit ``__init__``: mypyc compiles it)."""

    __slots__ = ("conns", "expires", "key", "live")

    def __init__(self, key: DialogKey, expires: float) -> None:
        self.key = key
        self.expires = expires
        self.conns: list[int] = []
        self.live = True


def dialog_key(call_id: str, tag: str | None, other: str | None) -> DialogKey:
    a, b = tag or "", other or ""
    return (call_id, a, b) if a <= b else (call_id, b, a)


class DialogPins:
    """Live dialogs by (Call-ID, tags) → their TCP connection ids, and per connection how
    many live dialogs depend on it."""

    __slots__ = ("_dialogs", "_expiry", "_users", "max_duration")

    def __init__(self, max_duration: float = 14400.0) -> None:
        self.max_duration = max_duration
        self._dialogs: dict[DialogKey, _Pin] = {}
        self._users: dict[int, int] = {}  # connection id → live dialogs using it
        self._expiry: deque[_Pin] = deque()  # in pinning order, hence in expiry order

    def __len__(self) -> int:
        return len(self._dialogs)

    def pin(
        self,
        call_id: str,
        tag: str | None,
        other: str | None,
        conns: tuple[int | None, ...],
        now: float,
    ) -> None:
        """The dialog (Call-ID, ``tag``, ``other``) depends on ``conns`` (None: not TCP).

        Pinning a dialog again (a re-INVITE's 2xx, a retransmitted 2xx) adds connections but
        keeps the first deadline: a dialog is held at most ``max_duration`` in all."""
        self.expire(now)
        if not any(conn is not None for conn in conns):
            return
        key = dialog_key(call_id, tag, other)
        entry = self._dialogs.get(key)
        if entry is None:
            entry = self._dialogs[key] = _Pin(key, now + self.max_duration)
            self._expiry.append(entry)
        for conn in conns:
            if conn is not None and conn not in entry.conns:
                entry.conns.append(conn)
                self._users[conn] = self._users.get(conn, 0) + 1

    def unpin(self, call_id: str, tag: str | None, other: str | None) -> bool:
        """The dialog ended (its BYE was answered); whether it held connections."""
        entry = self._dialogs.get(dialog_key(call_id, tag, other))
        if entry is None:
            return False
        self._drop(entry)
        return True

    def pinned(self, conn_id: int, now: float) -> bool:
        """Does a live dialog depend on connection ``conn_id``? (the transport's idle check)"""
        self.expire(now)
        return conn_id in self._users

    def dialogs(self, conn_id: int) -> list[DialogKey]:
        """The live dialogs depending on ``conn_id`` (for logs)."""
        return [key for key, entry in self._dialogs.items() if conn_id in entry.conns]

    def expire(self, now: float) -> int:
        """Drop the pins past their deadline; how many went."""
        gone = 0
        expiry = self._expiry
        while expiry and (not expiry[0].live or expiry[0].expires <= now):
            entry = expiry.popleft()
            if entry.live:
                self._drop(entry)
                gone += 1
        return gone

    def _drop(self, entry: _Pin) -> None:
        entry.live = False
        if self._dialogs.get(entry.key) is entry:
            del self._dialogs[entry.key]
        for conn in entry.conns:
            users = self._users.get(conn, 0) - 1
            if users > 0:
                self._users[conn] = users
            else:
                self._users.pop(conn, None)
        entry.conns.clear()
