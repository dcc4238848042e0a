# Stub of the optional C extension pks/sip/_split.c (built by ``python -m pks.accel``).
from typing import Any

def split_message(
    data: bytes, keys: dict[bytes, str], content_length_key: str, max_lines: int = ...
) -> list[Any] | None:
    """[first_end, body, content_length (-1: none), kind, a, b, key, line, value, …], or None:
    not the common case (kind: a status, -1 a request, 0 neither; a, b: where the parts are),
    or more than ``max_lines`` header lines."""

def forget() -> None:
    """Empty the C table of names (for a caller whose dict remaps a name it answered before)."""
