"""Fixtures of the container tests: podman, the image built from this tree, the stand-in for
the official PostgreSQL image.

They take minutes (the image compiles the core), so they run only when asked for with
``-m container`` (``scripts/test`` does in its whole-suite mode) and are skipped otherwise.
Without podman (or a tool around it) they are skipped, or fail when ``CI`` is set, so that a
CI machine missing them cannot pass silently.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .podman import IMAGE, POSTGRES_IMAGE, ROOT, Podman, Unavailable

HERE = Path(__file__).parent


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() not in ("", "0", "false"):
        pytest.fail(f"{reason} (CI is set, so this is an error)", pytrace=False)
    pytest.skip(reason)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "container" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="container tests run with -m container (minutes)")
    for item in items:
        if item.get_closest_marker("container") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Podman:
    try:
        engine = Podman(tmp_path_factory.mktemp("podman"))
        engine.base_image()
    except Unavailable as exc:
        _unavailable(str(exc))
    return engine


@pytest.fixture(scope="session")
def image(podman: Podman) -> Iterator[str]:
    """The image of deploy/Containerfile, built from this working tree (``PKS_TEST_IMAGE``
    names an image built already, to try the tests again without the build's minutes)."""
    given = os.environ.get("PKS_TEST_IMAGE")
    if given:
        yield given
        return
    seconds = podman.build(IMAGE, ROOT, ROOT / "deploy" / "Containerfile")
    print(f"\n{IMAGE} built in {seconds:.0f} s")
    yield IMAGE


@pytest.fixture(scope="session")
def postgres_image(podman: Podman) -> str:
    began = time.monotonic()
    podman.build(POSTGRES_IMAGE, HERE / "postgres")
    print(f"\n{POSTGRES_IMAGE} built in {time.monotonic() - began:.0f} s")
    return POSTGRES_IMAGE
