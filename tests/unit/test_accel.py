"""The optional mypyc accelerator: which core runs, and the module list stays real."""

from __future__ import annotations

import importlib.machinery
import os
import sys
from pathlib import Path

import pytest

from pks import accel

SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]


def test_status_is_the_core_this_run_expects() -> None:
    # scripts/test sets PKS_TEST_CORE: "pure" for the first pass, "compiled" for the second
    expected = os.environ.get("PKS_TEST_CORE")
    if expected is None:  # a plain pytest run: whichever, but never a partly compiled core
        assert accel.status() in (accel.PURE, accel.COMPILED)
        return
    want = {"pure": accel.PURE, "compiled": accel.COMPILED}[expected]
    assert accel.status() == want
    import pks.proxy

    assert pks.proxy.__file__ is not None
    assert pks.proxy.__file__.endswith(SUFFIX) is (expected == "compiled")


def test_every_listed_module_exists_and_is_imported_by_name() -> None:
    root = accel.PACKAGE_ROOT
    for path in accel.MODULES:
        assert (root / path).is_file(), path
    assert accel.module_name("pks/sip/parse.py") == "pks.sip.parse"
    assert len(set(accel.MODULES)) == len(accel.MODULES)


def test_clean_removes_compiled_files_only(tmp_path: Path) -> None:
    pkg = tmp_path / "pks" / "sip"
    pkg.mkdir(parents=True)
    (pkg / "parse.py").write_text("x = 1\n")
    (pkg / f"parse{SUFFIX}").write_bytes(b"\0")
    (tmp_path / f"abc__mypyc{SUFFIX}").write_bytes(b"\0")
    assert accel.clean(tmp_path) == 2
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == ["parse.py"]


def test_cli_needs_a_place_to_build(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        accel.main(["build"])
    assert stop.value.code == 2
    assert "--out DIR or --inplace" in capsys.readouterr().err
    assert accel.main(["status"]) == 0
    assert capsys.readouterr().out.strip() == accel.status()


def test_sources_digest_follows_every_source_file(tmp_path: Path) -> None:
    # a compiled copy is rebuilt exactly when a source of the package changed
    (tmp_path / "pks" / "sip").mkdir(parents=True)
    (tmp_path / "pks" / "sip" / "parse.py").write_text("x = 1\n")
    first = accel.sources_digest(tmp_path)
    assert accel.sources_digest(tmp_path) == first
    (tmp_path / "pks" / "sip" / "parse.py").write_text("x = 2\n")
    second = accel.sources_digest(tmp_path)
    assert second != first
    (tmp_path / "pks" / "new.py").write_text("")
    assert accel.sources_digest(tmp_path) != second


def test_build_key_names_the_interpreter(tmp_path: Path) -> None:
    # a copy compiled by another interpreter (another venv's python3) is built again
    (tmp_path / "pks").mkdir()
    (tmp_path / "pks" / "net.py").write_text("x = 1\n")
    mine = accel.build_key(tmp_path)
    assert mine == accel.build_key(tmp_path)
    assert accel.sources_digest(tmp_path) in mine
    assert os.path.realpath(sys.executable) in mine
    assert accel.build_key(tmp_path, "/usr/bin/python3.11 3.11.2") != mine


def test_inplace_build_refuses_a_source_tree(capsys: pytest.CaptureFixture[str]) -> None:
    if not (accel.PACKAGE_ROOT.parent / "pyproject.toml").is_file():
        pytest.skip("pks is installed, not run from a checkout")
    with pytest.raises(SystemExit) as stop:
        accel.main(["build", "--inplace"])
    assert stop.value.code == 2
    assert "source tree" in capsys.readouterr().err
