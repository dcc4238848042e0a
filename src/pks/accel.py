"""Optional accelerator: the sans-IO core compiled to C extensions with mypyc.

The hot path — parser, sanity, transactions, forwarding, routing lookups, the proxy spine, the
UDP send/receive glue — is plain typed Python. mypyc compiles those same files, unchanged, to
C extension modules, about twice as fast; nothing else is needed at run time. Without them the
pure-Python modules run: the fallback *is* the source, so both pass the same tests
(``scripts/test`` runs the suite on both).

``python -m pks.accel build [--out DIR | --inplace]`` builds them (needs mypy, a C compiler and
the Python headers):

* ``--out DIR`` (``scripts/compile``: ``build/accel``): a complete copy of the ``pks`` package
  with the compiled modules beside their sources; run it with ``PYTHONPATH=DIR``. The working
  tree stays pure Python, so an edited file is never shadowed by an older compiled one.
* ``--inplace``: next to the installed package (a production install in its own virtualenv).

``python -m pks.accel clean [--out DIR | --inplace]`` removes them; ``status`` says which
modules of the running interpreter's ``pks`` are compiled. ``pks run`` logs it at start-up.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.machinery
import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path

#: The modules compiled (relative to the directory holding the ``pks`` package). Only the
#: data path: build-time code (regex translation, snapshot loading) gains nothing from it.
MODULES: tuple[str, ...] = (
    "pks/net.py",
    "pks/sanity.py",
    "pks/proxy.py",
    "pks/sip/errors.py",
    "pks/sip/names.py",
    "pks/sip/record.py",
    "pks/sip/memo.py",
    "pks/sip/params.py",
    "pks/sip/uri.py",
    "pks/sip/via.py",
    "pks/sip/nameaddr.py",
    "pks/sip/message.py",
    "pks/sip/parse.py",
    "pks/sip/build.py",
    "pks/sip/framing.py",
    "pks/sip/status.py",
    "pks/transaction/effects.py",
    "pks/transaction/timers.py",
    "pks/transaction/wheel.py",
    "pks/transaction/client_invite.py",
    "pks/transaction/client_non_invite.py",
    "pks/transaction/server_invite.py",
    "pks/transaction/server_non_invite.py",
    "pks/cdr/record.py",
    "pks/forward/calls.py",
    "pks/forward/config.py",
    "pks/forward/context.py",
    "pks/forward/dialog.py",
    "pks/forward/hop.py",
    "pks/forward/nat.py",
    "pks/forward/pins.py",
    "pks/forward/relay.py",
    "pks/forward/stopping.py",
    "pks/forward/request.py",
    "pks/forward/response.py",
    "pks/forward/sockets.py",
    "pks/route/decision.py",
    "pks/route/authorize.py",
    "pks/route/dialplan_index.py",
    "pks/route/lookup.py",
    "pks/route/stages.py",
    "pks/route/dispatch.py",
    "pks/route/algorithms.py",
    "pks/health/state.py",
    "pks/health/probe.py",
    "pks/health/prober.py",
    "pks/guard/gate.py",
    "pks/guard/quiet.py",
    "pks/dns/cache.py",
    "pks/transport/callbacks.py",
    "pks/transport/udp.py",
    "pks/transport/send.py",
    "pks/driver.py",
    "pks/workers/handoff.py",
    "pks/workers/journal.py",
    "pks/workers/shared.py",
)

#: Hand-written C extensions built with the mypyc modules (optional like them; each has a
#: ``.pyi`` stub and a pure-Python fallback in the module that imports it).
C_EXTENSIONS: tuple[tuple[str, str], ...] = (
    ("pks.transport._sendq", "pks/transport/_sendq.c"),  # UDP sends by a native thread
    ("pks.sip._split", "pks/sip/_split.c"),  # a message cut into start line, headers, body
    ("pks.sip._via", "pks/sip/_via.c"),  # the usual Via value read in one pass
    ("pks.route._keytable", "pks/route/_keytable.c"),  # the dialplan index's compact tables
)

PURE = "pure Python"
COMPILED = "compiled (mypyc)"
PACKAGE_ROOT = Path(__file__).resolve().parent.parent  # the directory holding ``pks``
STAMP = ".pks-accel-sources"  # in a compiled copy: what it was built from (`build_key`)


def module_name(path: str) -> str:
    return path.removesuffix(".py").replace("/", ".")


def compiled_modules() -> list[str]:
    """The modules of ``MODULES`` that this interpreter would load from a C extension."""
    found = []
    for path in MODULES:
        spec = importlib.util.find_spec(module_name(path))
        origin = spec.origin if spec is not None else None
        if origin and origin.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)):
            found.append(module_name(path))
    return found


def status() -> str:
    """``"compiled (mypyc)"``, ``"pure Python"`` or ``"partly compiled (n of m)"``."""
    n = len(compiled_modules())
    if n == 0:
        return PURE
    if n == len(MODULES):
        return COMPILED
    return f"partly compiled ({n} of {len(MODULES)} modules)"


def _extensions(root: Path) -> list[Path]:
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    found = [p for p in (root / "pks").rglob("*") if p.name.endswith(suffixes)]
    found += [p for p in root.glob("*__mypyc*") if p.name.endswith(suffixes)]
    return found


def clean(root: Path) -> int:
    """Remove the compiled modules under ``root``; returns how many files went."""
    gone = _extensions(root)
    for path in gone:
        path.unlink()
    return len(gone)


def sources_digest(root: Path) -> str:
    """A hash of every source file of the package under ``root`` (what a build is made of)."""
    digest = hashlib.sha256()
    for path in sorted([*(root / "pks").rglob("*.py"), *(root / "pks").rglob("*.c")]):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def build_key(root: Path, interpreter: str | None = None) -> str:
    """What a compiled copy is made of: the sources under ``root`` and the interpreter that
    compiles them (its path and version: another one's modules may load, but were built
    with its headers and flags, or not load at all)."""
    if interpreter is None:
        interpreter = f"{os.path.realpath(sys.executable)} {sys.version}"
    return f"{sources_digest(root)} {interpreter}"


def build(root: Path, copy_from: Path | None) -> None:
    """Compile ``MODULES`` in ``root`` (after copying the package there from ``copy_from``).

    A copy whose sources are those of ``copy_from``, compiled by this interpreter, with all
    its modules, is kept as it is (``STAMP`` holds its `build_key`): nothing is rebuilt."""
    stamp = root / STAMP
    if copy_from is not None:
        want = build_key(copy_from)
        have = stamp.read_text() if stamp.is_file() else ""
        if have == want and len(_extensions(root)) > len(MODULES):
            print(f"pks.accel: {root} is up to date")
            return
    try:
        from mypyc.build import mypycify
        from setuptools import Extension, setup
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise SystemExit(f"pks.accel: {exc.name} is needed to compile (pip install mypy)") from exc
    if copy_from is not None:
        shutil.rmtree(root / "pks", ignore_errors=True)
        stamp.unlink(missing_ok=True)
        root.mkdir(parents=True, exist_ok=True)
        shutil.copytree(
            copy_from / "pks", root / "pks", ignore=shutil.ignore_patterns("__pycache__", "*.so")
        )
    clean(root)
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="pks-accel-") as tmp:
        os.chdir(root)
        try:  # the generated C, objects and mypy's cache stay in tmp: only the modules land
            setup(
                name="pks-accel",
                ext_modules=[
                    *mypycify(
                        # as pyproject.toml's [tool.mypy] says, for a copy that cannot see it
                        [f"--cache-dir={tmp}/mypy", "--ignore-missing-imports", *MODULES],
                        opt_level="3",
                        target_dir=f"{tmp}/c",
                    ),
                    *(
                        Extension(name, [source], extra_compile_args=["-O2"])
                        for name, source in C_EXTENSIONS
                        if sys.platform == "linux"
                    ),
                ],
                script_args=[
                    *("-q", "build_ext", "--inplace"),
                    *("--build-temp", f"{tmp}/o", "--build-lib", f"{tmp}/lib"),
                ],
            )
        finally:
            os.chdir(cwd)
    if copy_from is not None:
        stamp.write_text(want)
    print(f"pks.accel: {len(MODULES)} modules compiled in {root} (and {len(C_EXTENSIONS)} C)")


def build_inplace(root: Path) -> None:
    """Compile the package installed under ``root`` (site-packages). mypy, run there, would
    take every module beside ``pks`` (``typing_extensions``, ...) for the program's own and
    refuse to build: the package is compiled in a copy, whose modules then go next to their
    sources."""
    with tempfile.TemporaryDirectory(prefix="pks-accel-copy-") as tmp:
        copy = Path(tmp)
        build(copy, root)
        clean(root)
        for path in _extensions(copy):
            shutil.copy2(path, root / path.relative_to(copy))
    print(f"pks.accel: compiled modules installed in {root}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pks.accel", description=__doc__.split("\n")[0])
    parser.add_argument("action", choices=("build", "clean", "status"))
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--out", type=Path, help="a compiled copy of the package in this directory")
    where.add_argument("--inplace", action="store_true", help="next to the installed package")
    args = parser.parse_args(argv)
    if args.action == "status":
        print(status())
        return 0
    if args.out is None and not args.inplace:
        parser.error("say where: --out DIR or --inplace")
    root = PACKAGE_ROOT if args.inplace else args.out.resolve()
    if args.inplace and args.action == "build" and (root.parent / "pyproject.toml").is_file():
        # a source checkout (editable install): compiled modules would shadow later edits
        parser.error(f"{root} is a source tree: build a copy with --out DIR (scripts/compile)")
    if args.action == "clean":
        print(f"pks.accel: {clean(root)} compiled files removed from {root}")
        return 0
    if args.inplace:
        build_inplace(root)
    else:
        build(root, PACKAGE_ROOT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
