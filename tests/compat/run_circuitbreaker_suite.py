"""Run the public test suite of circuitbreaker 2.1.3 (fabfuel) against aiocircuitbreaker.

The suite ships in the sdist on PyPI: this script downloads that sdist (checking its sha256),
extracts its ``tests/`` into a temporary directory, writes a ``circuitbreaker.py`` shim beside
them that re-exports the names the suite imports from :mod:`aiocircuitbreaker`, and runs pytest
on them in a subprocess. It exits with pytest's status.

The private attributes 2.x tests write (``cb._last_failure = ...``, ``cb._state = ...``) are
supported. Deselected: any test that writes another private attribute of the breaker (found by
reading the suite's source: this package keeps its state elsewhere, so such a write would change
nothing), and ``test_circuitbreaker_error__str__``, which expects the message of a breaker that is
closed to say ``30 sec remaining``: here a closed breaker has ``open_remaining == 0`` (a
documented change), so the message says ``0 sec remaining``.

Everything else runs, sync functions and sync generators included.

Usage (with the project's virtual environment, after ``pip install -e ".[test]"``)::

    python tests/compat/run_circuitbreaker_suite.py [--sdist PATH] [--keep] [-- PYTEST_ARGS...]

Standard library only (pytest, pytest-asyncio and pytest-mock run in the subprocess).
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from pathlib import Path, PurePosixPath

SDIST_URL = (
    "https://files.pythonhosted.org/packages/df/ac/"
    "de7a92c4ed39cba31fe5ad9203b76a25ca67c530797f6bb420fff5f65ccb/circuitbreaker-2.1.3.tar.gz"
)
SDIST_SHA256 = "1a4baee510f7bea3c91b194dcce7c07805fe96c4423ed5594b75af438531d084"
TESTS_PREFIX = PurePosixPath("circuitbreaker-2.1.3/tests")
# What the suite imports from circuitbreaker (tests/conftest.py, test_unit.py, test_functional.py).
SHIM_NAMES = (
    "CircuitBreaker",
    "CircuitBreakerError",
    "CircuitBreakerMonitor",
    "circuit",
    "STATE_CLOSED",
    "STATE_OPEN",
    "STATE_HALF_OPEN",
)
# The private attributes 2.x tests may write: this package supports writing them.
SUPPORTED_WRITES = frozenset({"_last_failure", "_state"})
# Tests deselected for a documented difference, with the difference.
DIFFERENT = {
    "tests/test_unit.py::test_circuitbreaker_error__str__": (
        "expects '(0 failures, 30 sec remaining)' for a closed breaker; here open_remaining is "
        "0 while closed (documented), so the message says '0 sec remaining'"
    ),
}
PLUGINS = ("pytest", "pytest_asyncio", "pytest_mock")

SHIM = '''"""circuitbreaker 2.x names, served by aiocircuitbreaker (written by {script})."""

from aiocircuitbreaker import {names}

__all__ = {all!r}
AIOCIRCUITBREAKER_SHIM = True
'''

PYTEST_INI = """[pytest]
# Written by {script}: keeps pytest from reading any configuration outside this directory.
asyncio_default_fixture_loop_scope = function
"""


def main(argv: list[str] | None = None) -> int:
    """Fetch, prepare and run the suite; return pytest's exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sdist", type=Path, help="use this local copy of the sdist")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("pytest_args", nargs="*", help="extra arguments for pytest (after --)")
    args = parser.parse_args(argv)

    missing = [name for name in PLUGINS if importlib.util.find_spec(name) is None]
    if missing:
        print(
            f"error: {', '.join(missing)} not installed in {sys.executable}; "
            'install the test extra: pip install -e ".[test]"',
            file=sys.stderr,
        )
        return 2

    work = Path(tempfile.mkdtemp(prefix="circuitbreaker-suite-"))
    try:
        data = args.sdist.read_bytes() if args.sdist else download(SDIST_URL)
        digest = hashlib.sha256(data).hexdigest()
        if digest != SDIST_SHA256:
            print(f"error: sdist sha256 is {digest}, expected {SDIST_SHA256}", file=sys.stderr)
            return 2
        sdist = work / "circuitbreaker-2.1.3.tar.gz"
        sdist.write_bytes(data)
        tests = work / "tests"
        extract_tests(sdist, tests)
        script = Path(__file__).name
        (tests / "circuitbreaker.py").write_text(
            SHIM.format(script=script, names=", ".join(SHIM_NAMES), all=list(SHIM_NAMES)),
            encoding="utf-8",
        )
        (work / "pytest.ini").write_text(PYTEST_INI.format(script=script), encoding="utf-8")

        env = dict(os.environ)
        # The shim goes first on the path: a real circuitbreaker installed here is not tested.
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tests), env.get("PYTHONPATH")]))
        check_shim(env, work)

        deselected = {
            nodeid: f"writes private attribute(s) {', '.join(attributes)}"
            for nodeid, attributes in private_writers(tests)
        }
        deselected.update(DIFFERENT)
        print(f"circuitbreaker 2.1.3 suite in {tests}, against aiocircuitbreaker")
        print(f"deselected ({len(deselected)} test functions, with all their parameters):")
        for nodeid, reason in deselected.items():
            print(f"  {nodeid}: {reason}")
        command = [
            sys.executable,
            "-m",
            "pytest",
            "tests",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:cov",
            "-o",
            "asyncio_mode=auto",
            "--rootdir",
            str(work),
            "-c",
            str(work / "pytest.ini"),
            "-ra",
            *(f"--deselect={nodeid}" for nodeid in deselected),
            *args.pytest_args,
        ]
        print("running:", " ".join(command), flush=True)
        return subprocess.run(command, cwd=work, env=env, check=False).returncode
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def download(url: str, attempts: int = 3) -> bytes:
    """Return the body at ``url``, trying a few times on network errors."""
    for attempt in range(1, attempts + 1):
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                return bytes(response.read())
        except OSError as exc:
            if attempt == attempts:
                raise
            print(f"download failed ({exc}); retrying", file=sys.stderr)
            time.sleep(2 * attempt)
    raise AssertionError  # unreachable


def extract_tests(sdist: Path, destination: Path) -> None:
    """Extract the regular files under ``tests/`` of ``sdist`` into ``destination``."""
    destination.mkdir()
    found = []
    with tarfile.open(sdist, "r:gz") as archive:
        for member in archive.getmembers():
            path = PurePosixPath(member.name)
            if not member.isfile() or path.parent != TESTS_PREFIX or path.suffix != ".py":
                continue
            source = archive.extractfile(member)
            assert source is not None
            (destination / path.name).write_bytes(source.read())
            found.append(path.name)
    expected = {"conftest.py", "test_functional.py", "test_unit.py"}
    if not expected <= set(found):
        msg = f"the sdist's tests/ holds {sorted(found)}, expected {sorted(expected)}"
        raise RuntimeError(msg)


def private_writers(tests: Path) -> list[tuple[str, list[str]]]:
    """Return (node id, attributes) for each test function that assigns an unsupported
    ``x._private`` (one not in ``SUPPORTED_WRITES``)."""
    found = []
    for module in sorted(tests.glob("test_*.py")):
        tree = ast.parse(module.read_text(encoding="utf-8"), filename=str(module))
        functions = [
            node
            for node in tree.body
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.name.startswith("test")
        ]
        names = [function.name for function in functions]
        for function in functions:
            written = sorted(set(private_targets(function)))
            if not written:
                continue
            # --deselect matches node id prefixes: make sure this one names only this test
            # (and its parameters), not another test whose name starts the same way.
            clash = [
                name for name in names if name != function.name and name.startswith(function.name)
            ]
            if clash:
                msg = f"deselecting {function.name} would also deselect {clash}"
                raise RuntimeError(msg)
            found.append((f"tests/{module.name}::{function.name}", written))
    return found


def private_targets(function: ast.AST) -> list[str]:
    """Return the ``x._name`` attributes (not dunders) that ``function`` assigns to."""
    written = []
    for statement in ast.walk(function):
        if isinstance(statement, ast.Assign):
            targets = statement.targets
        elif isinstance(statement, (ast.AugAssign, ast.AnnAssign)):
            targets = [statement.target]
        else:
            continue
        for target in targets:
            if (
                isinstance(target, ast.Attribute)
                and target.attr.startswith("_")
                and not target.attr.startswith("__")
                and target.attr not in SUPPORTED_WRITES
            ):
                written.append(f"{ast.unparse(target.value)}.{target.attr}")
    return written


def check_shim(env: dict[str, str], cwd: Path) -> None:
    """Fail unless ``import circuitbreaker`` in the suite's environment gives the shim."""
    probe = (
        "import circuitbreaker, aiocircuitbreaker; "
        "assert getattr(circuitbreaker, 'AIOCIRCUITBREAKER_SHIM', False), circuitbreaker.__file__; "
        "assert circuitbreaker.CircuitBreaker is aiocircuitbreaker.CircuitBreaker; "
        "print('circuitbreaker shim ->', aiocircuitbreaker.__file__, aiocircuitbreaker.__version__)"
    )
    subprocess.run([sys.executable, "-c", probe], cwd=cwd, env=env, check=True)


if __name__ == "__main__":
    sys.exit(main())
