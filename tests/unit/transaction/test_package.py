"""The public surface of pks.transaction, and its sans-IO promise."""

from __future__ import annotations

import ast
import pkgutil
from pathlib import Path

import pks.transaction

PUBLIC = {
    "DEFAULT_TIMERS",
    "TICK",
    "ClientInviteState",
    "ClientInviteTransaction",
    "ClientNonInviteState",
    "ClientNonInviteTransaction",
    "Deliver",
    "DeliverAck",
    "Effect",
    "ServerInviteState",
    "ServerInviteTransaction",
    "ServerNonInviteState",
    "ServerNonInviteTransaction",
    "Terminated",
    "TimedOut",
    "TimerWheel",
    "Timers",
    "Transmit",
    "TransportFailed",
}
# Only these may be imported: no sockets, no asyncio, no clock, no other pks package (but the
# base of the small immutable values, pks.sip.record: equality and repr, nothing of SIP).
ALLOWED_IMPORTS = {"__future__", "dataclasses", "enum", "heapq", "math", "typing", "pks.sip.record"}
MODULES = sorted(info.name for info in pkgutil.iter_modules(pks.transaction.__path__))


def test_all_is_pinned_and_importable() -> None:
    assert set(pks.transaction.__all__) == PUBLIC
    for name in PUBLIC:
        assert getattr(pks.transaction, name) is not None


def test_every_module_opens_with_its_step() -> None:
    root = Path(pks.transaction.__file__).parent
    for name in ["__init__", *MODULES]:
        # read from the source: a module compiled by mypyc (pks.accel) has no __doc__
        doc = ast.get_docstring(ast.parse((root / f"{name}.py").read_text(encoding="utf-8")))
        assert (doc or "").startswith("Step ④ transaction"), name


def test_modules_import_nothing_but_the_standard_core() -> None:
    root = Path(pks.transaction.__file__).parent
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert name in ALLOWED_IMPORTS or name.startswith("pks.transaction"), (
                    f"{path.name} imports {name}"
                )
