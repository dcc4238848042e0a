"""Beside the data path: where ``pks run`` writes its log, and in which form.

Always to standard error, one line per record. On a terminal or in a container each line
starts with its time. Under systemd, when standard error is the journal (``JOURNAL_STREAM``
names it), the time is left to the journal, which stamps every line itself, and each line
starts with its syslog priority (``<3>`` error, ``<4>`` warning, ``<6>`` info, ``<7>`` debug),
which journald reads and strips: ``journalctl -u pks -p warning`` then shows the warnings
and errors only.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TextIO

__all__ = ["journal_stream", "setup"]

# syslog(3) priorities of the logging levels
PRIORITIES = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}


class JournalFormatter(logging.Formatter):
    """``<priority>LEVEL name: message``; the lines of a multi-line message keep the priority."""

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{PRIORITIES.get(record.levelno, 6)}>"
        return "\n".join(prefix + line for line in super().format(record).splitlines())


def journal_stream(stream: TextIO) -> bool:
    """True if ``stream`` is the journal's socket that systemd gave this service."""
    device, _, inode = os.environ.get("JOURNAL_STREAM", "").partition(":")
    try:
        info = os.fstat(stream.fileno())
        return (info.st_dev, info.st_ino) == (int(device), int(inode))
    except (OSError, ValueError):  # not a file (tests), or no JOURNAL_STREAM
        return False


def setup(level: str, tag: str = "") -> None:
    """Send the log of ``pks run`` at ``level`` to standard error; ``tag`` marks a worker."""
    handler = logging.StreamHandler(sys.stderr)
    if journal_stream(sys.stderr):
        handler.setFormatter(JournalFormatter(f"%(levelname)s %(name)s{tag}: %(message)s"))
    else:
        handler.setFormatter(
            logging.Formatter(f"%(asctime)s %(levelname)s %(name)s{tag}: %(message)s")
        )
    logging.basicConfig(level=level, handlers=[handler])
