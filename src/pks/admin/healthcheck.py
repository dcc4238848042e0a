"""The probe client: ``python -m pks.admin.healthcheck [ready|live]`` exits 0 when the local
proxy's ``/health/ready`` (or ``/health/live``) answers 200, 1 otherwise, with one line saying
why. It is what the container image's HEALTHCHECK and the compose file run.

It asks the admin API where ``PKS_ADMIN_LISTEN`` (environment or ``PKS_CONFIG`` file) says it
is, a wildcard address meaning loopback, with the standard library's HTTP client only: it runs
every few seconds, so it skips the ``pks`` command's imports (Typer, httpx, the provisioning
code) and costs about a third of a second of CPU.
"""

from __future__ import annotations

import ipaddress
import sys
import urllib.error
import urllib.request

from pks.config import ConfigError, Settings

__all__ = ["LIVE", "READY", "main", "probe_url"]

# the paths live here, not in pks.admin.health, so that this client never imports FastAPI
LIVE = "/health/live"
READY = "/health/ready"
TIMEOUT = 3.0


def probe_url(settings: Settings, which: str) -> str:
    """The URL of the ``which`` probe of the proxy configured by ``settings``."""
    address = settings.admin_address
    host = address.host
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        if ip.is_unspecified:  # listening on every address: loopback is one of them
            host = "::1" if ip.version == 6 else "127.0.0.1"
        host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{address.port}{READY if which == 'ready' else LIVE}"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    which = args[0] if args else "ready"
    if which not in ("ready", "live") or len(args) > 1:
        print("usage: python -m pks.admin.healthcheck [ready|live]", file=sys.stderr)
        return 2
    try:
        url = probe_url(Settings(), which)
    except (ConfigError, ValueError) as exc:
        print(f"pks healthcheck: configuration error: {exc}", file=sys.stderr)
        return 1
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as answer:
            print(f"pks healthcheck: {which}: {answer.read(200).decode(errors='replace')}")
            return 0
    except urllib.error.HTTPError as exc:  # 503: not ready yet
        body = exc.read(200).decode(errors="replace")
        print(f"pks healthcheck: {which}: {exc.code} {body}", file=sys.stderr)
    except (OSError, ValueError) as exc:  # refused, timed out: not running
        print(f"pks healthcheck: {which}: no answer at {url}: {exc}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
