"""pks.notify (sd_notify without libsystemd) and pks.logs (the journal's line form)."""

from __future__ import annotations

import logging
import os
import socket
import uuid
from pathlib import Path

import pytest

from pks import logs
from pks.notify import notify


def test_notify_without_a_service_manager_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert notify("READY=1") is False


def test_notify_sends_one_datagram(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as manager:
        manager.bind(str(tmp_path / "sock"))
        monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "sock"))
        assert notify("READY=1", "STATUS=up") is True
        assert manager.recv(100) == b"READY=1\nSTATUS=up"


def test_notify_to_an_abstract_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"pks-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as manager:
        manager.bind("\0" + name)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert notify("STOPPING=1") is True
        assert manager.recv(100) == b"STOPPING=1"


def test_a_failed_notification_is_logged_not_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody"))
    assert notify("READY=1") is False
    assert "cannot notify the service manager" in caplog.text


def test_journal_lines_carry_their_priority() -> None:
    formatter = logs.JournalFormatter("%(levelname)s %(name)s: %(message)s")
    record = logging.LogRecord("pks.server", logging.WARNING, __file__, 1, "a\nb", None, None)
    assert formatter.format(record) == "<4>WARNING pks.server: a\n<4>b"
    record.levelno, record.levelname = logging.ERROR, "ERROR"
    assert formatter.format(record).startswith("<3>ERROR")


def test_the_journal_is_recognised_by_its_stream(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with (tmp_path / "journal").open("w") as stream:
        info = os.fstat(stream.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{info.st_dev}:{info.st_ino}")
        assert logs.journal_stream(stream)
        with (tmp_path / "other").open("w") as other:
            assert not logs.journal_stream(other)
    monkeypatch.delenv("JOURNAL_STREAM")
    with (tmp_path / "journal").open("w") as stream:
        assert not logs.journal_stream(stream)
