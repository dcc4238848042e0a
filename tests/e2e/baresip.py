"""A real user agent in the end-to-end world: baresip (Debian's ``baresip-core``), driven
through its ``ctrl_tcp`` module.

Each `Baresip` runs in the test's private network (see harness.py) on its own 127.0.0.x with
one account, ``answermode=auto``, PCMU only and a short WAV file as its microphone (``aufile``),
no sound card. Its ``ctrl_tcp`` socket listens inside the namespace too: the test process
reaches it from a thread that joins the namespace (``setns``) just to connect; the socket it
opens stays in the namespace and is then used from anywhere.

``ctrl_tcp`` speaks netstrings of JSON: a command ``{"command": "dial", "params": URI,
"token": T}`` gets ``{"response": true, "ok": ..., "token": T}``; call events arrive as
``{"event": true, "type": "CALL_ESTABLISHED", ...}``.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import math
import socket
import struct
import subprocess
import threading
import time
import wave
from pathlib import Path
from typing import Any

from .harness import Endpoint, HarnessError, Netns

CLONE_NEWNET = 0x40000000
TIMEOUT = 10.0


def connect_inside(netns: Netns, at: Endpoint, timeout: float = TIMEOUT) -> socket.socket:
    """A TCP connection to ``at`` inside ``netns`` (opened by a thread that joined it)."""
    found: dict[str, Any] = {}

    def run() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            with open(netns.prefix[1].removeprefix("--net=")) as ns:
                if libc.setns(ns.fileno(), CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns")
            deadline = time.monotonic() + timeout
            while True:
                try:
                    found["sock"] = socket.create_connection((at.ip, at.port), timeout=1.0)
                    return
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
        except OSError as exc:
            found["error"] = exc

    thread = threading.Thread(target=run, name="netns-connect")
    thread.start()
    thread.join()
    if "sock" not in found:
        raise HarnessError(f"cannot connect to {at} in the test network: {found.get('error')}")
    sock: socket.socket = found["sock"]
    sock.settimeout(timeout)
    return sock


def write_tone(path: Path, seconds: float = 1.0, rate: int = 8000) -> None:
    """A mono 16-bit WAV of a 440 Hz tone (aufile's microphone)."""
    frames = b"".join(
        struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * n / rate)))
        for n in range(int(seconds * rate))
    )
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(frames)


class Baresip:
    """One baresip process with one account ``user`` at ``sip``; ``control`` is its ctrl_tcp."""

    def __init__(
        self, netns: Netns, workdir: Path, name: str, user: str, sip: Endpoint, control: Endpoint
    ) -> None:
        self.name = name
        self.user = user
        self.sip = sip
        self.control = control
        self._netns = netns
        self.home = workdir / f"baresip-{name}"
        self.home.mkdir()
        self.log_path = self.home / "baresip.log"
        self.events: list[dict[str, Any]] = []
        self._buffer = b""
        self._proc: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._tokens = 0

    def start(self) -> None:
        tone = self.home / "tone.wav"
        write_tone(tone)
        (self.home / "config").write_text(
            "\n".join(
                [
                    "poll_method epoll",
                    f"net_interface {self.sip.ip}",  # SIP and media on our own address
                    f"sip_listen {self.sip}",
                    "call_local_timeout 20",
                    f"audio_source aufile,{tone}",
                    "audio_player aufile,/dev/null",
                    "audio_alert aufile,/dev/null",
                    "rtp_ports 30000-30999",
                    "module_path /usr/lib/baresip/modules",
                    "module g711.so",
                    "module aufile.so",
                    "module_tmp account.so",
                    "module_app menu.so",
                    "module_app ctrl_tcp.so",
                    f"ctrl_tcp_listen {self.control}",
                    "",
                ]
            )
        )
        (self.home / "accounts").write_text(
            f"<sip:{self.user}@{self.sip.ip}:{self.sip.port}>;regint=0;answermode=auto"
            ";audio_codecs=PCMU;mwi=no;pubint=0\n"
        )
        (self.home / "contacts").write_text("")
        with self.log_path.open("wb") as log:
            self._proc = self._netns.popen(
                ["baresip", "-f", str(self.home), "-v"],
                cwd=self.home,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._sock = connect_inside(self._netns, self.control)

    # --- ctrl_tcp ---------------------------------------------------------------------------
    def command(self, command: str, params: str = "") -> dict[str, Any]:
        """Run a command; its response (events met meanwhile are kept in ``events``)."""
        assert self._sock is not None
        self._tokens += 1
        token = f"{self.name}-{self._tokens}"
        body = json.dumps({"command": command, "params": params, "token": token}).encode()
        self._sock.sendall(b"%d:%s," % (len(body), body))
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            message = self._read(deadline)
            if message.get("response") and message.get("token") == token:
                return message
        raise HarnessError(f"baresip {self.name}: no response to {command!r}")

    def wait_event(self, kind: str, timeout: float = TIMEOUT) -> dict[str, Any]:
        """The first event of type ``kind`` (already received or coming within ``timeout``)."""
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events:
                if event.get("type") == kind and not event.get("_seen"):
                    event["_seen"] = True
                    return event
            if time.monotonic() > deadline:
                seen = [e.get("type") for e in self.events]
                raise HarnessError(
                    f"baresip {self.name}: no {kind} within {timeout}s (events: {seen});"
                    f" its log ends with:\n{self.log()[-3000:]}"
                )
            with contextlib.suppress(TimeoutError):
                self._read(deadline)

    def _read(self, deadline: float) -> dict[str, Any]:
        assert self._sock is not None
        while True:
            head, colon, rest = self._buffer.partition(b":")
            if colon and head.isdigit() and len(rest) > int(head):
                size = int(head)
                body, self._buffer = rest[:size], rest[size + 1 :]
                message: dict[str, Any] = json.loads(body)
                if message.get("event"):
                    self.events.append(message)
                return message
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            self._sock.settimeout(left)
            try:
                data = self._sock.recv(65536)
            except TimeoutError as exc:
                raise TimeoutError from exc
            if not data:
                raise HarnessError(f"baresip {self.name}: control connection closed")
            self._buffer += data

    def stop(self) -> None:
        if self._sock is not None:
            body = json.dumps({"command": "quit", "params": "", "token": "quit"}).encode()
            with contextlib.suppress(OSError):
                self._sock.sendall(b"%d:%s," % (len(body), body))
            self._sock.close()
            self._sock = None
        if self._proc is not None and self._proc.poll() is None:
            try:
                self._proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=5)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
