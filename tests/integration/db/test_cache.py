"""The snapshot cache file: round trip, atomic replacement, clear errors on bad files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pks.db.cache import FORMAT, CacheError, read_cache, write_cache
from pks.route.rows import AddressRow, DialplanRow, DispatcherRow, PeerRow, SetRow, TableRows

ROWS = TableRows(
    address=(AddressRow(1, 1, "10.0.0.1", 32, 0, None), AddressRow(2, 2, "10.0.0.2", 24, 5, "x")),
    dialplan=(DialplanRow(3, 1, 1, 1, "^33", 0, "", "", "7"),),
    dispatcher=(DispatcherRow(4, 7, "sip:10.0.0.3", 0, 1, "weight=5", "gw"),),
    peers=(PeerRow(5, "customer", "acme", "x", 7, None, 10, ""),),
    sets=(SetRow(7, "hash"),),
)


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "snap.json"
    write_cache(path, ROWS, "sqlite:///pks.db")
    rows, written, source = read_cache(path)
    assert rows == ROWS and written > 0 and source == "sqlite:///pks.db"
    write_cache(path, TableRows(), "again")  # replaced whole, no temporary file left
    assert read_cache(path)[0] == TableRows()
    assert [p.name for p in tmp_path.iterdir()] == ["snap.json"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{oops", "cannot read snapshot cache"),
        ('{"format": "other"}', "is not a pks snapshot cache"),
        (json.dumps({"format": FORMAT}), "no tables"),
        (
            json.dumps({"format": FORMAT, "tables": {"address": [{"id": 1}]}}),
            "bad address row",
        ),
        (
            json.dumps(
                {
                    "format": FORMAT,
                    "tables": {"sets": [{"setid": "7", "algorithm": "hash"}]},
                }
            ),
            "bad sets row: setid='7' is not int",
        ),
    ],
)
def test_bad_files_are_refused_with_a_reason(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "snap.json"
    path.write_text(content)
    with pytest.raises(CacheError, match=message):
        read_cache(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CacheError, match="does not exist"):
        read_cache(tmp_path / "none.json")
