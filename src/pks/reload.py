"""The outcome of a routing reload, beside the data path.

``pks.server.Server.reload`` makes it; the admin API and the worker glue read it (and the glue
builds the instance-wide one). It lives in a module of its own so that none of them imports
another: ``pks.admin`` and ``pks.workers`` see the server only through their own protocols
(:class:`pks.admin.service.Instance`, :class:`pks.workers.node.Host`), and the server imports
them.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ReloadResult"]


@dataclass(frozen=True, slots=True)
class ReloadResult:
    ok: bool
    message: str
