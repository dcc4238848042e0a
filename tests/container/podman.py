"""Podman for the container tests, set up as ``docs/deploy.md`` says for machines without an
image registry: the ``runc`` runtime, no rlimit changes, a Debian base image made locally
(``mmdebstrap``) when none is there, builds that never pull.

Role: test support for tests/container. Every image and container a test makes is named
``pks-test…`` and removed by the test that made it (images are kept: the next run reuses
their layers).
"""

from __future__ import annotations

import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BASE = "docker.io/library/debian:bookworm-slim"
IMAGE = "localhost/pks-test"
POSTGRES_IMAGE = "localhost/pks-test-postgres"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


class Unavailable(RuntimeError):
    """Podman (or a tool around it) cannot run here: the tests are skipped, or fail in CI."""


class Podman:
    """``podman`` with this session's settings (a containers.conf of its own)."""

    def __init__(self, workdir: Path) -> None:
        if shutil.which("podman") is None:
            raise Unavailable("podman is not installed (apt-get install podman runc uidmap)")
        conf = workdir / "containers.conf"
        # crun fails here on setrlimit, and so does any rlimit change (docs/deploy.md)
        runtime = '\n[engine]\nruntime = "runc"\n' if shutil.which("runc") else ""
        conf.write_text(f"[containers]\ndefault_ulimits = []\n{runtime}")
        self.env = {**os.environ, "CONTAINERS_CONF": str(conf)}
        self.workdir = workdir
        probe = self.run("info", "--format", "{{.Host.OCIRuntime.Name}}", check=False)
        if probe.returncode != 0:
            raise Unavailable(f"podman cannot run here: {probe.stderr.strip()[-300:]}")

    def run(
        self, *args: str, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["podman", *args], capture_output=True, text=True, timeout=timeout, env=self.env
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"podman {' '.join(args)}: exit {result.returncode}\n{result.stdout[-3000:]}"
                f"\n{result.stderr[-3000:]}"
            )
        return result

    def exists(self, image: str) -> bool:
        return self.run("image", "exists", image, check=False).returncode == 0

    def base_image(self) -> None:
        """The Debian base image under its usual name, made from Debian's packages if absent."""
        if self.exists(BASE):
            return
        if shutil.which("mmdebstrap") is None:
            raise Unavailable(f"no {BASE} image and no mmdebstrap to make one")
        with tempfile.TemporaryDirectory(dir=self.workdir) as tmp:
            rootfs = Path(tmp) / "rootfs.tar"
            made = subprocess.run(
                ["mmdebstrap", "--variant=minbase", "bookworm", str(rootfs)],
                capture_output=True,
                text=True,
                timeout=600,
            )
            if made.returncode != 0:
                raise Unavailable(f"mmdebstrap failed: {made.stderr.strip()[-300:]}")
            self.run("import", str(rootfs), BASE, timeout=300)

    def build(self, tag: str, context: Path, containerfile: Path | None = None) -> float:
        """Build ``tag`` (Docker format: it keeps HEALTHCHECK); returns the seconds it took."""
        args = ["build", "--format", "docker", "--network", "host", "--pull=never", "-t", tag]
        if CA_BUNDLE.is_file():  # pip inside the build trusts what the machine trusts
            args += ["-v", f"{CA_BUNDLE}:/etc/pip-ca.crt:ro"]
            args += ["--build-arg", "PIP_CERT=/etc/pip-ca.crt"]
        if containerfile is not None:
            args += ["-f", str(containerfile)]
        began = time.monotonic()
        self.run(*args, str(context), timeout=3600)
        return time.monotonic() - began

    def logs(self, container: str) -> str:
        result = self.run("logs", container, check=False)
        return result.stdout + result.stderr


def compose_command() -> list[str]:
    """podman-compose 1.1 or newer (Debian 12's 1.0.3 mishandles ``network_mode``)."""
    beside = Path(sys.executable).parent / "podman-compose"
    for candidate in (beside, shutil.which("podman-compose")):
        if candidate is None or not Path(candidate).exists():
            continue
        out = subprocess.run([str(candidate), "--version"], capture_output=True, text=True)
        found = re.search(r"podman-compose version (\d+)\.(\d+)", out.stdout + out.stderr)
        if found and (int(found[1]), int(found[2])) >= (1, 1):
            return [str(candidate)]
    raise Unavailable("podman-compose >= 1.1 not found (the test extras install it)")


def free_port(host: str = "127.0.0.1") -> int:
    """A port free for both UDP and TCP on ``host`` (SIP listens on both), below 32768: the
    kernel's ephemeral range starts there, and Kamailio's ``address.port`` is a SMALLINT."""
    for _ in range(200):
        port = random.randrange(20000, 32768)
        with (
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp,
            socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp,
        ):
            try:
                udp.bind((host, port))
                tcp.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port")


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.5)
