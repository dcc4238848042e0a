"""The container image and the compose file: a real SIPp call through pks running in its
container, routing from the compose file's PostgreSQL (``-m container``; minutes)."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from .podman import ROOT, Podman, compose_command, free_port, wait_for

pytestmark = pytest.mark.container

SCENARIOS = ROOT / "tests" / "e2e" / "scenarios"
COMPOSE = ROOT / "deploy" / "compose.yaml"
PROXY, CALLER, CARRIER = "127.0.0.1", "127.0.0.2", "127.0.0.3"


def test_image_is_small_and_unprivileged(podman: Podman, image: str) -> None:
    """User pks, no compiler, the core compiled, `pks run` by default, a HEALTHCHECK."""
    inside = podman.run(
        "run",
        "--rm",
        "--entrypoint",
        "sh",
        image,
        "-c",
        "id -u; id -g; command -v gcc cc mypy mypyc || echo no-compiler;"
        " python3 -m pks.accel status",
    ).stdout.split("\n")
    assert inside[:4] == ["5060", "5060", "no-compiler", "compiled (mypyc)"]
    config = json.loads(podman.run("image", "inspect", image).stdout)[0]
    assert config["Config"]["Entrypoint"] == ["pks"] and config["Config"]["Cmd"] == ["run"]
    check = config.get("Healthcheck") or config["Config"].get("Healthcheck") or {}
    assert check.get("Test") == ["CMD", "python3", "-m", "pks.admin.healthcheck", "ready"]
    size = int(config["Size"]) / 1e6
    assert size < 500, f"{size:.0f} MB"


def test_binds_5060_as_user_pks_with_only_that_capability(podman: Podman, image: str) -> None:
    """The default sockets (port 5060) in a network namespace of its own, every capability
    dropped but NET_BIND_SERVICE; ready, then a clean stop."""
    name = f"pks-test-{uuid.uuid4().hex[:8]}"
    podman.run(
        "run",
        "-d",
        "--name",
        name,
        "--network",
        "none",
        "--cap-drop",
        "all",
        "--cap-add",
        "net_bind_service",
        "--read-only",
        image,
    )
    try:
        ready = ["exec", name, "python3", "-m", "pks.admin.healthcheck", "ready"]
        wait_for(lambda: podman.run(*ready, check=False).returncode == 0, 60, "ready")
        assert "udp:0.0.0.0:5060" in podman.logs(name)
        podman.run("stop", "-t", "40", name, timeout=60)
        state = json.loads(podman.run("inspect", name).stdout)[0]["State"]
        assert state["ExitCode"] == 0, podman.logs(name)
        assert "pks: stopped" in podman.logs(name)
    finally:
        podman.run("rm", "-f", name, check=False)


class Compose:
    """deploy/compose.yaml as a project of its own, on ports free on this machine."""

    def __init__(self, podman: Podman, image: str, postgres_image: str) -> None:
        self.podman = podman
        self.project = f"pks-test-{uuid.uuid4().hex[:8]}"
        self.sip_port, self.admin_port = free_port(PROXY), free_port(PROXY)
        self.env = {
            "PKS_IMAGE": image,
            "PKS_POSTGRES_IMAGE": postgres_image,
            "PKS_LISTEN": f"udp:{PROXY}:{self.sip_port},tcp:{PROXY}:{self.sip_port}",
            "PKS_ADMIN_LISTEN": f"{PROXY}:{self.admin_port}",
        }
        self.command = [*compose_command(), "-p", self.project, "-f", str(COMPOSE)]

    def __call__(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [*self.command, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**self.podman.env, **self.env},
        )
        assert result.returncode == 0, f"{args}: {result.stdout[-2000:]}\n{result.stderr[-2000:]}"
        return result

    def container(self, service: str) -> str:
        return f"{self.project}_{service}_1"

    def pks(self, *args: str) -> str:
        return self.podman.run("exec", self.container("pks"), "pks", *args).stdout


@pytest.fixture
def compose(podman: Podman, image: str, postgres_image: str) -> Iterator[Compose]:
    project = Compose(podman, image, postgres_image)
    try:
        yield project
    finally:
        for service in ("pks", "pks-init", "postgres"):
            print(f"--- {service}\n{podman.logs(project.container(service))[-3000:]}")
        subprocess.run(
            [*project.command, "down", "-v", "-t", "40"],
            capture_output=True,
            env={**podman.env, **project.env},
            timeout=300,
        )


def test_call_through_the_compose_file(compose: Compose, tmp_path: Path) -> None:
    """`compose up`: PostgreSQL, `pks db init`, pks healthy; customer and carrier made with
    the image's `pks` command; a SIPp call from the customer reaches the carrier's SIPp and
    is answered and hung up through the container."""
    compose("up", "-d")
    pks = compose.container("pks")
    healthy = ["healthcheck", "run", pks]
    wait_for(lambda: compose.podman.run(*healthy, check=False).returncode == 0, 180, "healthy")
    status = compose.pks("db", "status")
    assert "postgresql" in status and "LISTEN/NOTIFY (triggers installed)" in status, status

    caller_port, carrier_port = free_port(CALLER), free_port(CARRIER)
    caller, carrier = f"{CALLER}:{caller_port}", f"{CARRIER}:{carrier_port}"
    compose.pks(
        "customer",
        "add",
        "acme",
        "--source",
        caller,
        "--gateway",
        f"sip:{caller}",
        "--did",
        "33140000000-33140000999",
    )
    compose.pks(
        "provider",
        "add",
        "carrier",
        "--source",
        carrier,
        "--gateway",
        f"sip:{carrier}",
        "--route",
        "33*",
    )

    def sipp(name: str, scenario: str, at: str, port: int, *more: str) -> list[str]:
        return [
            "sipp",
            *more,
            "-sf",
            str(SCENARIOS / scenario),
            "-i",
            at,
            "-p",
            str(port),
            "-bind_local",
            "-cp",
            str(free_port()),
            "-nostdin",
            "-timeout",
            "60s",
            "-trace_err",
            "-error_file",
            str(tmp_path / f"{name}.err"),
        ]

    uas = subprocess.Popen(
        sipp("carrier", "uas_answer_options.xml", CARRIER, carrier_port, "-m", "1"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        to = f"{PROXY}:{compose.sip_port}"
        call = ["-s", "33999000111", "-m", "1", "-timeout_error"]
        uac = subprocess.run(
            sipp("caller", "uac_call.xml", CALLER, caller_port, to, *call),
            capture_output=True,
            timeout=90,
        )
        assert uac.returncode == 0, (uac.stderr.decode()[-2000:], _read(tmp_path / "caller.err"))
        assert uas.wait(timeout=30) == 0, _read(tmp_path / "carrier.err")
    finally:
        if uas.poll() is None:
            uas.kill()
            uas.wait()
    status_json = json.loads(compose.pks("status", "--json"))
    assert status_json["database"]["watch"].startswith("LISTEN"), status_json["database"]


def _read(path: Path) -> str:
    return path.read_text(errors="replace")[-2000:] if path.exists() else ""
