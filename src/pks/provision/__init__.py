"""Beside the data path: provisioning — checked writes to the routing tables.

Blocking SQLAlchemy Core code used by the admin API (in a worker thread, followed by a
snapshot reload) and by the ``pks`` CLI directly against the database when no proxy runs.
Every write is one transaction that is checked *before* it commits, with the router's own
snapshot build (:mod:`pks.provision.checks`): a refused write changes nothing.

* :mod:`~pks.provision.tables` — rows of ``address``, ``dialplan``, ``dispatcher``, ``pks_set``;
* :mod:`~pks.provision.peers` — customers and providers as whole objects;
* :mod:`~pks.provision.numbers` — DIDs and routes (exact, ranges, prefixes, patterns);
* :mod:`~pks.provision.transfer` / :mod:`~pks.provision.dbtext` — Kamailio dbtext files.
"""

from pks.provision.errors import Conflict, Invalid, NotFound, ProvisionError
from pks.provision.store import ensure_tables, read_rows

__all__ = ["Conflict", "Invalid", "NotFound", "ProvisionError", "ensure_tables", "read_rows"]
