"""Dispatcher distribution algorithms: our names and the Kamailio ``ds_select`` numbers.

A set's algorithm comes from ``pks_set.algorithm`` (name or number), else the global
``PKS_DISPATCHER_ALG``. Whatever the algorithm picks first, the failover order continues
through the other usable destinations of the set.

========  ===============  ====================================================================
Kamailio  name             pick
========  ===============  ====================================================================
0         hash-callid      ``ds_hash(Call-ID)`` → index, then the next usable one
1         hash-from        ``ds_hash(From user)`` (Kamailio hashes user and host of the From URI)
3         hash-ruri        ``ds_hash(R-URI user)``
4         round-robin      per-set counter, moved past the destination actually chosen
6         random           uniformly among usable destinations
8         priority         first usable by ``priority`` (serial: the rest follow in set order)
9         weighted         smooth weighted round-robin on ``weight=`` (1–100; 0 = no share)
11        relative-weight  like weighted, over usable destinations only, on ``rweight=``
========  ===============  ====================================================================
"""

from __future__ import annotations

__all__ = ["ALGORITHMS", "DEFAULT_ALGORITHM", "KAMAILIO_NUMBERS", "parse_algorithm"]

ALGORITHMS: dict[str, int] = {
    "hash-callid": 0,
    "hash-from": 1,
    "hash-ruri": 3,
    "round-robin": 4,
    "random": 6,
    "priority": 8,
    "weighted": 9,
    "relative-weight": 11,
}
"""Our algorithm names → the Kamailio ``ds_select`` algorithm number they match."""

KAMAILIO_NUMBERS: dict[int, str] = {number: name for name, number in ALGORITHMS.items()}
DEFAULT_ALGORITHM = "round-robin"


def parse_algorithm(text: str | int) -> str:
    """A name or Kamailio number (``"9"``, ``9``, ``"Weighted"``) → our name; ValueError else."""
    value = str(text).strip().lower().replace("_", "-")
    if value.isdigit() and int(value) in KAMAILIO_NUMBERS:
        return KAMAILIO_NUMBERS[int(value)]
    if value in ALGORITHMS:
        return value
    known = ", ".join(f"{name} ({number})" for name, number in ALGORITHMS.items())
    raise ValueError(f"unknown dispatcher algorithm {text!r}; known: {known}")
