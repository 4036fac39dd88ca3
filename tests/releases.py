"""Real application releases for the update tests: this project as a wheel, under any version.

The dependency wheels come from PyPI once (sdnotify is built from its sdist) and are kept in a cache folder keyed by the
hash of pyproject.toml (KIOSK_TEST_CACHE, default ~/.cache/field-kiosk-tests), so a CI
run that did not change the dependencies fetches nothing. The kiosk wheel itself is
built offline (its build backend from that cache too) from a copy of the source tree with
the version rewritten.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def cache_root() -> Path:
    """Where fetched dependency wheels are kept between runs."""
    return Path(os.environ.get("KIOSK_TEST_CACHE") or Path.home() / ".cache" / "field-kiosk-tests")


def dependency_wheels() -> Path:
    """A folder of wheels for every runtime dependency of the project (fetched once per pyproject.toml)."""
    pyproject = (ROOT / "pyproject.toml").read_bytes()
    key = hashlib.sha256(pyproject).hexdigest()[:16]
    folder = cache_root() / f"wheels-{key}"
    if (folder / ".complete").exists():
        return folder
    import tomllib

    meta = tomllib.loads(pyproject.decode("utf-8"))
    deps = meta["project"]["dependencies"] + meta["build-system"]["requires"]  # building kiosk needs the latter
    part = folder.with_name(folder.name + ".part")
    shutil.rmtree(part, ignore_errors=True)
    part.mkdir(parents=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "-w", str(part), *deps],
        check=True, timeout=600,
    )
    (part / ".complete").write_text(json.dumps(deps))
    shutil.rmtree(folder, ignore_errors=True)
    os.rename(part, folder)
    return folder


def kiosk_wheel(version: str, out: Path, patch: dict[str, str] | None = None) -> Path:
    """Build this project's wheel as `version` into `out` (offline); `patch` replaces files' text first."""
    src = out / f"src-{version}"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".venv", ".git", "tests", "bench", "docs", "image-build", "__pycache__", "*.egg-info", "build", "dist", ".*cache*"))
    for name, text in {"pyproject.toml": None, "kiosk/__init__.py": None}.items():
        p = src / name
        body = p.read_text(encoding="utf-8")
        if name == "pyproject.toml":
            body = re.sub(r'(?m)^version = ".*"$', f'version = "{version}"', body, count=1)
        else:
            body = re.sub(r'(?m)^__version__ = ".*"$', f'__version__ = "{version}"', body, count=1)
        p.write_text(body, encoding="utf-8")
    for name, text in (patch or {}).items():
        (src / name).write_text(text, encoding="utf-8")
    wheels = out / f"wheels-{version}"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-index",
         "--find-links", str(dependency_wheels()), "-w", str(wheels), str(src)],
        check=True, timeout=300, cwd=out,
    )
    shutil.rmtree(src)
    found = sorted(wheels.glob("field_kiosk-*.whl"))
    assert len(found) == 1, found
    return found[0]
