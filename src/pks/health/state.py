"""Run-time state of dispatcher destinations, kept beside the immutable routing snapshot.

Every destination of the live snapshot has a :class:`DestState` from the moment it is loaded,
keyed by its probe identity (set id, URI, socket name): the same URI reached through two
sockets is two destinations. The state uses Kamailio's flag bits (1 inactive, 2 trying,
4 disabled, 8 probing) so that ``dispatcher.list`` reads like Kamailio's, and has one of four
names:

* ``active`` — selectable, answering;
* ``probing`` — selectable, but the last probe(s) failed (Kamailio's *trying*): one more
  failure short of ``inactive`` after ``probing_threshold`` failures in a row;
* ``inactive`` — skipped by selection; back to ``active`` after ``inactive_threshold``
  answered probes in a row;
* ``disabled`` — set by the operator (or the row's flags), never selected, never probed, never
  changed by probes.

:meth:`GatewayStates.sync` is called on every snapshot swap: destinations whose row did not
change (same flags, priority and attrs) keep their run-time state and latency statistics; new
or changed rows start from the row's flags. State changes are logged once, not per probe.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from pks.route.decision import Target
from pks.route.dispatch import FLAG_DISABLED as DISABLED
from pks.route.dispatch import FLAG_INACTIVE as INACTIVE
from pks.route.dispatch import FLAG_PROBING as PROBING
from pks.route.dispatch import FLAG_TRYING as TRYING

if TYPE_CHECKING:
    from pks.route.dispatch import Destination
    from pks.route.snapshot import Snapshot

log = logging.getLogger("pks.health")

SKIP = INACTIVE | DISABLED
DestKey = tuple[int, str, str | None]


def dest_key(target: Target) -> DestKey:
    """A destination's identity: (set id, URI as stored, socket name)."""
    return (target.setid, target.uri, target.socket_name)


def flags_letters(flags: int) -> str:
    """Kamailio's two-letter FLAGS: I, D, T or A, then P (probing) or X."""
    if flags & INACTIVE:
        first = "I"
    elif flags & DISABLED:
        first = "D"
    elif flags & TRYING:
        first = "T"
    else:
        first = "A"
    return first + ("P" if flags & PROBING else "X")


def state_name(flags: int) -> str:
    if flags & DISABLED:
        return "disabled"
    if flags & INACTIVE:
        return "inactive"
    if flags & TRYING:
        return "probing"
    return "active"


def parse_state(text: str) -> int:
    """An operator's state → flag bits (without the probing bit unless asked).

    Accepts our names (``active``, ``inactive``, ``probing``, ``disabled``) and Kamailio's
    ``set_state`` letters/digits: first char ``a``/``1`` active, ``i``/``0`` inactive,
    ``d``/``2`` disabled, ``t``/``3`` trying; a second char ``p`` adds probing.
    """
    value = text.strip().lower()
    names = {"active": 0, "inactive": INACTIVE, "probing": TRYING, "disabled": DISABLED}
    if value in names:
        return names[value]
    letters = {"a": 0, "1": 0, "i": INACTIVE, "0": INACTIVE, "d": DISABLED, "2": DISABLED,
               "t": TRYING, "3": TRYING}  # fmt: skip
    if 1 <= len(value) <= 2 and value[0] in letters and value[1:] in ("", "p"):
        flags = letters[value[0]]
        if value[1:] == "p" and not flags & DISABLED:
            flags |= PROBING
        return flags
    raise ValueError(
        f"unknown state {text!r}: use active, inactive, probing or disabled"
        " (or Kamailio's a, i, t, d with an optional p)"
    )


@dataclass(slots=True, eq=False)
class DestState:
    """One destination's run-time state, probe counters and probe latency statistics."""

    key: DestKey
    target: Target
    signature: tuple[int, int, str]  # (flags, priority, attrs) of the row it came from
    flags: int
    probe: bool = True  # this destination is probed (attrs ping=0 turns it off)
    ping_from: str | None = None
    maxload: int = 0  # max concurrent calls (attrs maxload=), 0 = unlimited
    load: int = 0  # calls in flight / established through this destination
    failures: int = 0
    successes: int = 0
    last_code: int | None = None
    last_reason: str | None = None
    last_time: float | None = None  # wall-clock time of the last probe result
    probes: int = 0
    last_ms: float | None = None
    avg_ms: float = 0.0
    _m2: float = field(default=0.0, repr=False)
    in_flight: bool = False  # a probe is on its way

    @property
    def state(self) -> str:
        return state_name(self.flags)

    @property
    def usable(self) -> bool:
        return not self.flags & SKIP and (self.maxload <= 0 or self.load < self.maxload)

    @property
    def std_ms(self) -> float:
        return math.sqrt(self._m2 / self.probes) if self.probes > 1 else 0.0

    def add_latency(self, ms: float) -> None:
        """Welford's running mean and deviation over every answered probe."""
        self.probes += 1
        self.last_ms = ms
        delta = ms - self.avg_ms
        self.avg_ms += delta / self.probes
        self._m2 += delta * (ms - self.avg_ms)

    def probed(self, mode: str | None) -> bool:
        """Whether probe rounds in ``mode`` (``all``, ``inactive``, None = off) include us."""
        if mode is None or not self.probe or self.flags & DISABLED:
            return False
        return mode == "all" or bool(self.flags & INACTIVE)

    def describe(self, mode: str | None = None) -> dict[str, Any]:
        """JSON-friendly view for ``dispatcher.list`` and the REST API."""
        probed = self.probed(mode)
        return {
            "state": self.state,
            "flags": flags_letters(self.flags | (PROBING if probed else 0)),
            "probing": probed,
            "load": self.load,
            "maxload": self.maxload or None,
            "failures": self.failures,
            "successes": self.successes,
            "last_code": self.last_code,
            "last_reason": self.last_reason,
            "last_probe_at": self.last_time,
            "latency": None
            if self.last_ms is None
            else {
                "last_ms": round(self.last_ms, 3),
                "avg_ms": round(self.avg_ms, 3),
                "std_ms": round(self.std_ms, 3),
                "samples": self.probes,
            },
        }


def _log_change(dest: DestState, before: str, why: str) -> None:
    """One log line per state change (never per probe): up is INFO, down is WARNING."""
    if before == dest.state:
        return
    level = logging.INFO if dest.state in ("active", "probing") else logging.WARNING
    log.log(
        level, "gateway %s (set %d) %s → %s: %s", dest.key[1], dest.key[0], before, dest.state, why
    )


def _attr_flag_off(value: str | None) -> bool:
    return value is not None and value.strip().lower() in ("0", "no", "off", "false")


def _int_attr(value: str | None) -> int:
    try:
        return max(0, int(value or 0))
    except ValueError:
        return 0


class StateShare(Protocol):
    """Where several worker processes keep their gateway states and loads in common
    (:class:`pks.workers.shared.GatewayShare`); None in a single process."""

    def attach(self, states: Iterable[DestState]) -> None: ...
    def stale(self) -> int: ...
    def pull(self, states: Iterable[DestState], what: int = 2) -> None: ...
    def refresh_load(self, state: DestState) -> None: ...
    def publish(self, state: DestState) -> None: ...
    def add_load(self, state: DestState, delta: int) -> None: ...


class GatewayStates:
    """Every loaded destination's :class:`DestState`, by (set id, URI, socket name).

    With ``share`` set (worker processes), flags and loads are instance-wide: changes made
    here are published, changes made elsewhere are pulled before use.
    """

    __slots__ = (
        "_all_usable",
        "_states",
        "inactive_threshold",
        "ping_active",
        "probing_mode",
        "probing_threshold",
        "share",
    )

    def __init__(self, probing_threshold: int = 3, inactive_threshold: int = 2) -> None:
        self._states: dict[DestKey, DestState] = {}
        self.probing_threshold = max(1, probing_threshold)
        self.inactive_threshold = max(1, inactive_threshold)
        self.ping_active = True  # dispatcher.ping_active: False pauses probing (standby node)
        self._all_usable: bool | None = True
        self.probing_mode: str | None = None  # set by the proxy: all, inactive, None = off
        self.share: StateShare | None = None

    @property
    def all_usable(self) -> bool:
        """True when no destination is skipped (selection then needs no per-target check)."""
        if self.share is not None:
            self._fresh()
        if self._all_usable is None:
            self._all_usable = all(s.usable for s in self._states.values())
        return self._all_usable

    def changed(self) -> None:
        """Forget the cached :attr:`all_usable` (called after any state or load change)."""
        self._all_usable = None

    def refresh(self) -> None:
        """Bring the states up to date before reading them one by one (``is_usable``).

        A no-op in one process; worker processes pull what the others changed. The data
        path does it through :attr:`all_usable`."""
        self._fresh()

    def _fresh(self) -> None:
        """Pull what other workers changed (worker processes only)."""
        share = self.share
        if share is not None and (what := share.stale()):
            share.pull(self._states.values(), what)
            self._all_usable = None

    def _publish(self, dest: DestState) -> None:
        if self.share is not None:
            self.share.publish(dest)

    def __len__(self) -> int:
        return len(self._states)

    def __iter__(self) -> Iterator[DestState]:
        self._fresh()
        return iter(self._states.values())

    def sync(self, snapshot: Snapshot | None) -> None:
        """Adopt a new snapshot's destinations, keeping the state of unchanged rows."""
        old = self._states
        new: dict[DestKey, DestState] = {}
        if snapshot is not None:
            for dset in snapshot.dispatcher.sets.values():
                for dest in dset.destinations:
                    state = self._adopt(dest, old.get(dest_key(dest.target)))
                    new[state.key] = state
        self._states = new
        if self.share is not None:
            self.share.attach(new.values())
        self.changed()

    @staticmethod
    def _adopt(dest: Destination, previous: DestState | None) -> DestState:
        signature = (dest.flags, dest.priority, dest.attrs)
        attrs = dict(dest.attr_map)
        if previous is not None and previous.signature == signature:
            previous.target = dest.target
            return previous
        flags = dest.flags & (INACTIVE | DISABLED | PROBING)
        state = DestState(
            key=dest_key(dest.target),
            target=dest.target,
            signature=signature,
            flags=flags,
            probe=not _attr_flag_off(attrs.get("ping")),
            ping_from=attrs.get("ping_from") or None,
            maxload=_int_attr(attrs.get("maxload")),
        )
        if previous is not None:
            state.load = previous.load
        return state

    def get(self, target: Target) -> DestState | None:
        return self._states.get(dest_key(target))

    def find(self, setid: int, uri: str | None) -> list[DestState]:
        """Destinations of ``setid`` whose URI equals ``uri`` (case-insensitive); all if None."""
        wanted = None if uri is None else uri.lower()
        self._fresh()
        return [
            s
            for s in self._states.values()
            if s.key[0] == setid and (wanted is None or s.key[1].lower() == wanted)
        ]

    def is_usable(self, target: Target) -> bool:
        state = self._states.get(dest_key(target))
        return state is None or state.usable

    def describe(self, target: Target) -> dict[str, Any] | None:
        self._fresh()
        state = self._states.get(dest_key(target))
        if state is None:
            return None
        if self.share is not None:
            self.share.refresh_load(state)
        return state.describe(self.probing_mode)

    def set_state(self, setid: int, uri: str | None, state: str) -> int:
        """Operator override (``dispatcher.set_state``): overwrite the state bits.

        Returns how many destinations changed state; ValueError for an unknown state. Like
        Kamailio, this bypasses the probe state machine and keeps the failure counter.
        """
        flags = parse_state(state)
        found = self.find(setid, uri)
        self.changed()
        for dest in found:
            before = dest.flags
            keep_probe = dest.flags & PROBING if not flags & DISABLED else 0
            dest.flags = flags | keep_probe
            dest.successes = 0
            self._publish(dest)
            _log_change(dest, state_name(before), "operator")
        return len(found)

    # -- probe and call outcomes ----------------------------------------------------------
    def probe_result(
        self,
        dest: DestState,
        code: int,
        reason: str,
        alive: bool,
        rtt_ms: float | None,
        wall: float,
    ) -> None:
        """Record one probe outcome and run the state machine (log on state change)."""
        dest.in_flight = False
        self._fresh()
        self.changed()
        dest.last_code, dest.last_reason, dest.last_time = code, reason, wall
        if dest.flags & DISABLED:
            return
        if alive and rtt_ms is not None:
            dest.add_latency(rtt_ms)
        before = dest.flags
        self._outcome(dest, alive, f"probe answered {code} {reason}".strip())
        if dest.flags != before:
            self._publish(dest)

    def call_failed(self, target: Target, why: str) -> None:
        """Passive detection: a real call's transaction timed out towards ``target``."""
        self._fresh()
        dest = self._states.get(dest_key(target))
        if dest is None or dest.flags & DISABLED or not dest.probe:
            return
        if dest.target.dns:  # one address of a named gateway: its other ones may be fine
            return
        before = dest.state
        self.changed()
        dest.failures = max(dest.failures + 1, self.probing_threshold)
        dest.successes = 0
        dest.flags = (dest.flags & ~TRYING) | INACTIVE
        self._publish(dest)
        _log_change(dest, before, why)

    def _outcome(self, dest: DestState, alive: bool, what: str) -> None:
        before = dest.state
        if alive:
            dest.failures = 0
            if dest.flags & INACTIVE:
                dest.successes += 1
                if dest.successes >= self.inactive_threshold:
                    dest.flags &= ~(INACTIVE | TRYING)
                    dest.successes = 0
            else:
                dest.flags &= ~TRYING
        else:
            dest.successes = 0
            dest.failures += 1
            if not dest.flags & INACTIVE:
                if dest.failures >= self.probing_threshold:
                    dest.flags = (dest.flags & ~TRYING) | INACTIVE
                else:
                    dest.flags |= TRYING
        _log_change(dest, before, what)

    # -- call load ------------------------------------------------------------------------
    def add_load(self, target: Target, delta: int) -> None:
        dest = self._states.get(dest_key(target))
        if dest is not None:
            if self.share is not None:
                self.share.add_load(dest, delta)
            else:
                dest.load = max(0, dest.load + delta)
            if dest.maxload:
                self.changed()

    def loads(self) -> Iterable[tuple[DestKey, int]]:
        if self.share is not None:
            self.share.pull(self._states.values())
        return ((s.key, s.load) for s in self._states.values() if s.load)
