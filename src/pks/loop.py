"""Role: start-up, the event loop: uvloop when it is installed, asyncio's own otherwise.

``pks run`` runs on `new_event_loop` (or calls `install` before ``asyncio.run``); the transport and
the server work on either loop, and the integration tests run the transport on both.
"""

from __future__ import annotations

import asyncio

__all__ = ["install", "loop_name", "new_event_loop"]

try:
    import uvloop
except ImportError:  # uvloop is a dependency, but not on every platform (Windows)
    uvloop = None  # type: ignore[assignment]


def loop_name() -> str:
    """``"uvloop"`` or ``"asyncio"``: what `new_event_loop` builds (for the start-up log)."""
    return "asyncio" if uvloop is None else "uvloop"


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A new uvloop loop when uvloop is importable, else a new asyncio loop."""
    if uvloop is None:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def install() -> str:
    """Make `new_event_loop` the default for ``asyncio.run`` and friends; return `loop_name`."""
    if uvloop is not None:
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return loop_name()
