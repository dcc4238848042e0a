"""Fixtures of the end-to-end tests: one private network per session, one `Stage` per test.

SIPp (Debian package ``sip-tester``) and a network namespace (root, ``unshare``, ``nsenter``,
``ip``) are required: without them the tests are skipped, or fail when ``CI`` is set, so that a
CI machine missing them cannot pass silently. On failure, the proxy's log and each SIPp peer's
counters, errors and message trace are added to the report.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from .harness import HarnessError, Netns, Ports, Stage


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() not in ("", "0", "false"):
        pytest.fail(f"{reason} (CI is set, so this is an error)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def netns() -> Iterator[Netns]:
    if shutil.which("sipp") is None:
        _unavailable("sipp is not installed (apt-get install sip-tester)")
    missing = [tool for tool in ("unshare", "nsenter", "ip") if shutil.which(tool) is None]
    if missing:
        _unavailable(f"{', '.join(missing)} not found: no private network for the e2e tests")
    try:
        namespace = Netns()
    except HarnessError as exc:
        _unavailable(str(exc))
    yield namespace
    namespace.close()


@pytest.fixture(scope="session")
def ports() -> Ports:
    return Ports()


@pytest.fixture
def stage(netns: Netns, ports: Ports, tmp_path: Path) -> Iterator[Stage]:
    world = Stage(netns, ports, tmp_path)
    yield world
    world.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    world = getattr(item, "funcargs", {}).get("stage")
    if report.when == "call" and report.failed and isinstance(world, Stage):
        world.close()  # flushes every trace before it is read
        report.sections.extend(world.reports())
