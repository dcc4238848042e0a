# Stub of the optional C extension pks/sip/_via.c (built by ``python -m pks.accel``).
from typing import Any

def parse_usual(text: str) -> tuple[Any, ...] | None:
    """(transport, host, port, params, text, branch, has_rport), or None: not the usual
    spelling."""
