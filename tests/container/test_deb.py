"""The Debian package of deploy/build-deb, installed into a fresh Debian root (a container of
the image's base) as an administrator would: the unit passes ``systemd-analyze verify``, and
with systemd booted there the service becomes active through ``Type=notify``, answers
``pks status``, logs to the journal, survives a reinstall and stops on removal
(``-m container``; minutes)."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from .podman import BASE, ROOT, Podman, wait_for

pytestmark = pytest.mark.container

ROOT_IMAGE = "localhost/pks-test-debroot"


@pytest.fixture(scope="module")
def deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """deploy/build-deb's package of this tree (``PKS_TEST_DEB`` names one built already)."""
    given = os.environ.get("PKS_TEST_DEB")
    if given:
        return Path(given).resolve()
    version = Path("/etc/debian_version")
    release = version.read_text() if version.exists() else ""
    if not release.startswith("12"):
        pytest.skip("the package is built for the machine's release: Debian 12 is needed here")
    out = tmp_path_factory.mktemp("deb")
    began = time.monotonic()
    built = subprocess.run(
        [str(ROOT / "deploy" / "build-deb"), str(out)], capture_output=True, text=True, timeout=3600
    )
    assert built.returncode == 0, built.stderr[-3000:]
    print(f"\n.deb built in {time.monotonic() - began:.0f} s")
    return Path(built.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def installed(podman: Podman, deb: Path) -> Iterator[str]:
    """A fresh Debian root with systemd and the package installed (apt resolves its
    dependencies), kept as an image to boot."""
    name = f"pks-test-{uuid.uuid4().hex[:8]}"
    podman.run(
        "run",
        "-d",
        "--name",
        name,
        "--network",
        "host",
        "-v",
        f"{deb.parent}:/deb:ro",
        BASE,
        "sleep",
        "infinity",
    )
    try:
        podman.run(
            "exec",
            name,
            "sh",
            "-c",
            "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq"
            f" --no-install-recommends systemd /deb/{deb.name}",
            timeout=900,
        )
        podman.run("commit", "-q", name, ROOT_IMAGE, timeout=300)
    finally:
        podman.run("rm", "-f", name, check=False)
    yield f"/deb/{deb.name}"
    podman.run("rmi", "-f", ROOT_IMAGE, check=False)


def test_the_unit_verifies(podman: Podman, installed: str) -> None:
    verify = podman.run(
        "run",
        "--rm",
        "--network",
        "none",
        ROOT_IMAGE,
        "systemd-analyze",
        "verify",
        "pks.service",
        check=False,
    )
    assert (verify.returncode, verify.stdout + verify.stderr) == (0, "")


def test_the_service_runs_under_systemd(podman: Podman, installed: str, deb: Path) -> None:
    name = f"pks-test-{uuid.uuid4().hex[:8]}"
    podman.run(
        "run",
        "-d",
        "--name",
        name,
        "--network",
        "none",
        "--systemd=always",
        "-v",
        f"{deb.parent}:/deb:ro",
        ROOT_IMAGE,
        "/lib/systemd/systemd",
    )

    def sh(script: str, check: bool = True) -> str:
        return podman.run("exec", name, "sh", "-c", script, check=check).stdout.strip()

    try:
        active = "systemctl is-active pks"
        wait_for(lambda: sh(active, check=False) == "active", 90, "pks active")
        shown = sh("systemctl show pks -p Type -p StatusText -p NRestarts -p User")
        assert "Type=notify" in shown and "StatusText=routing on udp:0.0.0.0:5060" in shown
        assert "NRestarts=0" in shown and "User=pks" in shown
        assert "routing: loaded" in sh("pks status")  # /usr/bin/pks, as root
        assert "pks: ready" in sh("journalctl -u pks --no-pager -o cat")
        assert sh("stat -c %U /var/lib/pks/pks.secret /var/lib/pks/pks.db") == "pks\npks"
        assert "ready" in sh("/opt/pks-sip-proxy/bin/python -m pks.admin.healthcheck ready")
        # installing the same package again (an upgrade) restarts the service, ready again
        sh(f"DEBIAN_FRONTEND=noninteractive dpkg -i {installed} >/dev/null")
        wait_for(lambda: sh(active, check=False) == "active", 90, "pks active again")
        assert sh("systemctl is-enabled pks") == "enabled"
        sh("DEBIAN_FRONTEND=noninteractive dpkg -r pks-sip-proxy >/dev/null")
        assert sh(active, check=False) != "active"
        assert sh("test -e /usr/bin/pks || echo gone") == "gone"
        assert sh("test -d /var/lib/pks && echo kept") == "kept"  # the data stays
    finally:
        print(podman.run("exec", name, "journalctl", "-u", "pks", "--no-pager", check=False).stdout)
        podman.run("rm", "-f", name, check=False)
