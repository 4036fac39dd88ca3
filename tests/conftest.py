"""Shared fixtures: `cfg` (TOML in tmp_path), `hw` (FakeHardware), `app`, `client`, and helpers."""

from __future__ import annotations

import importlib
import os
import socket
from pathlib import Path
from types import ModuleType
from typing import NoReturn

import pytest

from kiosk import config as config_mod

# Under CI=true a test whose dependency is missing fails instead of skipping: a green CI run
# means every test ran. tools/test.sh sets up everything they need on a fresh Debian machine.
CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def missing(why: str) -> NoReturn:
    """Something this test needs is not here: skip on a developer's machine, fail under CI=true."""
    if CI:
        pytest.fail(f"{why} (CI=true, so this fails rather than skips; tools/test.sh sets it up)", pytrace=False)
    pytest.skip(why)


def need_module(name: str) -> ModuleType:
    """Import a module a test needs, or `missing()` saying which."""
    try:
        return importlib.import_module(name)
    except ImportError as e:
        missing(f"Python module {name} is not installed: {e}")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "needs(ok, why): the test needs something; when `ok` is false it is missing()")


def pytest_runtest_setup(item: pytest.Item) -> None:
    for mark in item.iter_markers("needs"):
        ok, why = mark.args
        if not ok:
            missing(why)


def free_port() -> int:
    """A free TCP port on the loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def cfg_path(tmp_path: Path) -> Path:
    """A TOML configuration whose every folder is inside tmp_path."""
    data = tmp_path / "data"
    data.mkdir()
    path = tmp_path / "kiosk.toml"
    path.write_text(
        f"""
[point]
id = "test-point"
name = "测试服务点"

[storage]
data_dir = "{data}"
min_free_percent = 0

[web]
host = "127.0.0.1"
port = {free_port()}

[hardware]
backend = "fake"
""",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def cfg(cfg_path: Path) -> config_mod.Config:
    """The loaded test configuration (no environment overrides)."""
    return config_mod.load(cfg_path, env={})
