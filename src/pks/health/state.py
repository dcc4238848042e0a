"""Run-time state of dispatcher destinations, kept beside the immutable routing snapshot.

The snapshot carries each destination's flags as loaded from the ``dispatcher`` table; this
store holds what changed since at run time (``dispatcher.set_state``, health probes), keyed by
(set id, URI) with Kamailio's flag bits (1 inactive, 2 trying, 4 disabled, 8 probing). Dispatch
asks ``is_usable`` only when something was overridden, so the common path costs nothing.
"""

from __future__ import annotations

from pks.route.decision import Target

INACTIVE = 1
TRYING = 2
DISABLED = 4
PROBING = 8
SKIP = INACTIVE | DISABLED


class GatewayStates:
    """(setid, uri) → run-time flags that replace the loaded ones."""

    __slots__ = ("_flags",)

    def __init__(self) -> None:
        self._flags: dict[tuple[int, str], int] = {}

    def __bool__(self) -> bool:
        return bool(self._flags)

    def set(self, setid: int, uri: str, flags: int) -> None:
        self._flags[(setid, uri)] = flags

    def get(self, setid: int, uri: str) -> int | None:
        return self._flags.get((setid, uri))

    def clear(self) -> None:
        self._flags.clear()

    def is_usable(self, target: Target) -> bool:
        flags = self._flags.get((target.setid, target.uri))
        return flags is None or not flags & SKIP
