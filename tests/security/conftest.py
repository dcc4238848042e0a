"""The security suite: every door of the edge, tried as an attacker would.

Each test sends what an attacker sends — from an address in no table, and from a known peer —
and asserts what is on the wire afterwards. The end-to-end fixtures (a private network
namespace, a real proxy process, SIPp peers) are the e2e suite's.
"""

from tests.e2e.conftest import netns, ports, pytest_runtest_makereport, stage

__all__ = ["netns", "ports", "pytest_runtest_makereport", "stage"]
