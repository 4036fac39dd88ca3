"""Shared fixtures: `cfg` (TOML in tmp_path), `hw` (FakeHardware), `app`, `client`, and helpers."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from kiosk import config as config_mod


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
