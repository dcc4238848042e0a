"""Beside the data path: the errors of the provisioning layer, each with an HTTP status.

Every refusal names what is wrong in ``problems`` (one line each), and is raised *before*
anything is written: a provisioning call either commits all its rows or none.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["Conflict", "Invalid", "NotFound", "ProvisionError"]


class ProvisionError(Exception):
    """A refused provisioning request; ``status`` is the HTTP status the API answers."""

    status = 400

    def __init__(self, message: str, problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.problems = tuple(problems)

    def __str__(self) -> str:
        if not self.problems:
            return self.message
        return "\n".join([self.message, *(f"  - {p}" for p in self.problems)])


class NotFound(ProvisionError):
    """The row, customer or provider does not exist."""

    status = 404


class Invalid(ProvisionError):
    """The request is malformed, or would leave the tables in a state the router rejects."""

    status = 422


class Conflict(ProvisionError):
    """The request collides with existing rows (a name, tag or set id already in use)."""

    status = 409
