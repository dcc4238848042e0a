"""Beside the data path: what the instances of a cluster share — calls per second and bans
through Redis (:mod:`pks.cluster.sync`), never on the per-message path."""

from pks.cluster.sync import FloodSync

__all__ = ["FloodSync"]
