"""Under CI=true a test that cannot run because something is missing fails; it never skips quietly."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent
PROBE = '''
import pytest
from tests.conftest import missing, need_module

@pytest.mark.needs(False, "the frobnicator is not installed")
def test_marked():
    pass

def test_called():
    missing("no frobnicator here")

def test_module():
    need_module("kiosk_no_such_module")
'''


def _run(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess[str]:
    probe = TESTS / f"test_zz_probe_{os.getpid()}.py"
    probe.write_text(PROBE)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    try:
        return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(probe)],
                              cwd=TESTS.parent, env=env, capture_output=True, text=True, timeout=120)
    finally:
        probe.unlink()


def test_a_missing_dependency_fails_the_test_under_ci(tmp_path: Path) -> None:
    done = _run(tmp_path, "true")
    assert done.returncode == 1 and "skipped" not in done.stdout and "passed" not in done.stdout, done.stdout
    for why in ("the frobnicator is not installed", "no frobnicator here", "kiosk_no_such_module"):
        assert why in done.stdout


def test_a_missing_dependency_skips_the_test_on_a_developers_machine(tmp_path: Path) -> None:
    done = _run(tmp_path, None)
    assert done.returncode == 0 and "3 skipped" in done.stdout, done.stdout


def test_no_test_skips_for_a_missing_dependency_by_itself() -> None:
    """Every such skip goes through tests.conftest (missing, need_module, the `needs` mark)."""
    bare = re.compile(r"pytest\.importorskip|skipif\([^)]*(which|exists|geteuid|import)|pytest\.skip\([^)]*(not installed|not found|unreachable|needs )")
    found = [f"{p.name}:{n}" for p in TESTS.glob("test_*.py") for n, line in enumerate(p.read_text().splitlines(), 1)
             if bare.search(line)]
    assert found == []
