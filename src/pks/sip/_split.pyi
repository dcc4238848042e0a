# Stub of the optional C extension pks/sip/_split.c (built by ``python -m pks.accel``).
from typing import Any

def split_headers(data: bytes, start: int, keys: dict[bytes, str]) -> list[Any] | None:
    """[key, line, value, key, line, value, …, body offset], or None: not the common case."""
