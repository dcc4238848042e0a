"""The edge's guards, beside the spine: who may send us anything at all (`SourceGate`), and
how often a line about a refused packet may be logged (`Quiet`). Sans-IO: time is passed in.
See docs/security.md."""

from pks.guard.gate import SourceGate, reject_stranger
from pks.guard.quiet import Quiet

__all__ = ["Quiet", "SourceGate", "reject_stranger"]
