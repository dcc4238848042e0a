"""The I/O side of call records: the spool (bounded, cursors, restart), the file sink, the
webhook sink down for a while then back (everything delivered, in order, nothing twice from
a live run), the writer thread emptying the core's queue, and the delivery process (a real
one: ``python -m pks.cdr.deliver``) killed and restarted."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pks.cdr.fields import Packed, iso
from pks.cdr.record import CallRecord, Recorder, pack
from pks.cdr.service import CdrService, SinkConfig
from pks.cdr.sinks import acc_rows
from pks.cdr.spool import SpoolReader, SpoolWriter, backlog_bytes


def line(n: int) -> bytes:
    return json.dumps({"id": f"r{n}", "n": n}).encode() + b"\n"


def test_spool_delivers_in_order_to_each_reader_and_keeps_cursors(tmp_path: Path) -> None:
    writer = SpoolWriter(tmp_path, 1 << 20, segment_bytes=64)
    spool = SpoolReader(tmp_path, ("a", "b"))
    assert writer.append([line(n) for n in range(10)]) == 10
    writer.append([line(10)])
    got, cursor = spool.read("a", 4)
    assert [json.loads(x)["n"] for x in got] == [0, 1, 2, 3]
    spool.commit("a", cursor)
    again = SpoolReader(tmp_path, ("a", "b"))  # a restart: cursors and segments kept
    rest, cursor = again.read("a", 100)
    assert [json.loads(x)["n"] for x in rest] == list(range(4, 11))
    again.commit("a", cursor)
    assert backlog_bytes(tmp_path, ("a", "b")) > 0  # b has delivered nothing yet
    everything, cursor = again.read("b", 100)
    assert len(everything) == 11
    again.commit("b", cursor)
    assert again.read("a", 10)[0] == [] and not again.pending("b")
    assert backlog_bytes(tmp_path, ("a", "b")) == 0
    assert len(list(tmp_path.glob("seg-*"))) == 1  # the read ones deleted, not the last
    writer.close()


def test_spool_across_segments_and_a_writer_restart(tmp_path: Path) -> None:
    """Segments rotate (the reader moves on only from a complete one), a restarted writer
    starts a new segment, a torn last line left by a crash is skipped, long lines are read
    whole."""
    writer = SpoolWriter(tmp_path, 1 << 20, segment_bytes=100)
    spool = SpoolReader(tmp_path, ("a",))
    for n in range(6):
        writer.append([line(n)])
    writer.close()
    (sorted(tmp_path.glob("seg-*"))[-1]).open("ab").write(b'{"torn')  # a crash mid-line
    later = SpoolWriter(tmp_path, 1 << 20)
    big = json.dumps({"id": "big", "n": 6, "pad": "x" * 200_000}).encode() + b"\n"
    later.append([big, line(7)])
    got, cursor = spool.read("a", 100)
    assert [json.loads(x)["n"] for x in got] == list(range(8))
    spool.commit("a", cursor)
    assert spool.read("a", 100)[0] == [] and backlog_bytes(tmp_path, ("a",)) == 0
    later.close()


def test_spool_bound_drops_and_counts(tmp_path: Path) -> None:
    size = len(line(0))
    writer = SpoolWriter(tmp_path, 3 * size)
    assert writer.append([line(n) for n in range(5)]) == 3
    assert writer.dropped == 2
    spool = SpoolReader(tmp_path, ("a",))
    lines, cursor = spool.read("a", 10)
    spool.commit("a", cursor)
    assert len(lines) == 3
    writer.append([line(5)])  # the spool is full until a new segment lets the old one go
    assert writer.dropped == 3
    writer.close()


def record(n: int) -> CallRecord:
    rec = CallRecord(
        f"call-{n}", "ft", "caller", "3312345", "pbx1", "192.0.2.1", 5060, 21, 100.0 + n
    )
    rec.attempt("sip:192.0.2.9", 100.0 + n)
    rec.final(200, b"SIP/2.0 200 OK\r\n", [], 101.0 + n, "tt")
    rec.end, rec.ended_by = 160.0 + n, "caller"
    return rec


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def file_service(
    tmp_path: Path, wall_offset: float = 0.0, worker: int | None = None
) -> tuple[Recorder, CdrService, Path]:
    """A started service writing to ``tmp_path/cdr.jsonl`` through a real delivery process."""
    recorder = Recorder()
    out = tmp_path / "cdr.jsonl"
    service = CdrService(
        recorder,
        SinkConfig(("file",), file=str(out), linger=0.05),
        tmp_path / "spool",
        1 << 20,
        wall_offset=lambda: wall_offset,
        worker=worker,
        interval=0.02,
    )
    service.start()
    return recorder, service, out


def test_writer_thread_to_the_file_sink(tmp_path: Path) -> None:
    recorder, service, out = file_service(tmp_path, 1_800_000_000.0, worker=1)
    for n in range(3):
        recorder.done(record(n))
    wait_for(lambda: out.exists() and len(out.read_text().splitlines()) == 3)
    service.close()
    records = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["call_id"] for r in records] == ["call-0", "call-1", "call-2"]
    assert records[0]["duration"] == 59.0 and records[0]["worker"] == 1
    assert records[0]["start"] == "2027-01-15T08:01:40.000Z"
    assert service.stats()["cdr_delivered_file"] == 3


class Receiver:
    """A webhook receiver that can be down (answers 503) or up."""

    def __init__(self) -> None:
        self.up = False
        self.batches: list[list[dict[str, object]]] = []
        self.refused = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if receiver.up:
                    receiver.batches.append(json.loads(body))
                    self.send_response(204)
                else:
                    receiver.refused += 1
                    self.send_response(503)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/cdr"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.close()


def test_webhook_down_then_back_delivers_everything(tmp_path: Path, receiver: Receiver) -> None:
    recorder = Recorder()
    service = CdrService(
        recorder,
        SinkConfig(
            ("webhook",),
            webhook_url=receiver.url,
            webhook_timeout=2,
            batch=4,
            backoff=0.05,
            backoff_max=0.2,
            linger=0.05,
        ),
        tmp_path / "spool",
        1 << 20,
        wall_offset=lambda: 0.0,
        interval=0.02,
    )
    service.start()
    for n in range(10):
        recorder.done(record(n))
    # down: retried with backoff, kept in the spool (the receiver counts a refusal before the
    # service counts the failure, so wait for the service's own figure)
    wait_for(lambda: service.stats()["cdr_failures_webhook"] >= 3)
    assert receiver.refused >= 3
    assert service.stats()["cdr_spool_bytes"] > 0
    receiver.up = True
    for n in range(10, 15):
        recorder.done(record(n))
    wait_for(lambda: sum(len(b) for b in receiver.batches) == 15)
    service.close()
    delivered = [r["call_id"] for batch in receiver.batches for r in batch]
    assert delivered == [f"call-{n}" for n in range(15)]
    assert max(len(b) for b in receiver.batches) <= 4
    assert service.stats()["cdr_spool_bytes"] == 0


def test_undelivered_records_wait_in_the_spool_for_the_next_start(
    tmp_path: Path, receiver: Receiver
) -> None:
    recorder = Recorder()
    spool = tmp_path / "spool"
    service = CdrService(
        recorder,
        SinkConfig(
            ("webhook",), webhook_url=receiver.url, webhook_timeout=2, backoff=0.05, linger=0.05
        ),
        spool,
        1 << 20,
        wall_offset=lambda: 0.0,
        interval=0.02,
        grace=0.2,
    )
    service.start()
    for n in range(3):
        recorder.done(record(n))
    wait_for(lambda: receiver.refused >= 1)
    service.close()  # stops with the webhook still down
    receiver.up = True
    later = CdrService(
        Recorder(),
        SinkConfig(("webhook",), webhook_url=receiver.url, webhook_timeout=2, linger=0.05),
        spool,
        1 << 20,
        wall_offset=lambda: 0.0,
        interval=0.02,
    )
    later.start()
    wait_for(lambda: sum(len(b) for b in receiver.batches) == 3)
    later.close()


def test_a_killed_delivery_process_is_restarted_and_delivers_what_waited(
    tmp_path: Path,
) -> None:
    recorder, service, out = file_service(tmp_path)
    recorder.done(record(0))
    wait_for(lambda: service.stats()["cdr_delivered_file"] == 1)
    child = service._child
    assert child is not None
    child.kill()
    child.wait(5)
    for n in range(1, 4):
        recorder.done(record(n))  # spooled while no process delivers
    wait_for(lambda: service._child is not None and service._child is not child, 15)
    wait_for(lambda: service.stats()["cdr_delivered_file"] == 4)  # counts carried over
    service.close()
    delivered = [json.loads(x)["call_id"] for x in out.read_text().splitlines()]
    assert delivered == [f"call-{n}" for n in range(4)]
    ids = [json.loads(x)["id"] for x in out.read_text().splitlines()]
    assert len(set(ids)) == 4 and all(len(i) == 36 and i[14] == "4" for i in ids)


def test_acc_rows_like_kamailio() -> None:
    rec = record(1)
    rec.ended_by = "callee"
    answered = Packed(*pack("id-1", rec, 1_800_000_000.0))
    rows = acc_rows(answered, local=iso)
    assert [row[:5] for row in rows] == [
        ("INVITE", "ft", "tt", "call-1", "200"),
        ("BYE", "tt", "ft", "call-1", "200"),
    ]
    assert [row[6] for row in rows] == ["2027-01-15T08:01:42.000Z", "2027-01-15T08:02:41.000Z"]
    failed = answered._replace(code=503, reason="Service Unavailable", answer=None, to_tag=None)
    (row,) = acc_rows(failed._replace(ended_by=""), local=iso)
    assert row == ("INVITE", "ft", "", "call-1", "503", "Service Unavailable", iso(failed.end))
