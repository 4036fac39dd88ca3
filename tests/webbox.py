"""A real box for the web tests: sample content ingested through signed packages, served by waitress on loopback."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator
from contextlib import contextmanager

from kiosk import config as config_mod
from kiosk.box import Box
from kiosk.demo import publish_samples


def write_config(root: Path, port: int = 0, **web: Any) -> Path:
    """A TOML configuration with every folder under `root`; `web` adds [web] keys."""
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    extra = "".join(f"{k} = {v!r}\n" if isinstance(v, str) else f"{k} = {v}\n" for k, v in web.items())
    extra = extra.replace("'", '"')
    path = root / "kiosk.toml"
    path.write_text(
        f'[point]\nid = "test-point"\nname = "测试服务点"\n\n'
        f'[storage]\ndata_dir = "{data}"\nmin_free_percent = 0\n\n'
        f'[web]\nhost = "127.0.0.1"\nport = {port}\n{extra}\n'
        f'[hardware]\nbackend = "fake"\n',
        encoding="utf-8",
    )
    return path


@contextmanager
def running_box(root: Path, **web: Any) -> Iterator[Box]:
    """A box with the sample content (built, signed and ingested), serving on a free loopback port."""
    from kiosk.library import Library

    cfg = config_mod.load(write_config(root, **web), env={})
    library = Library(cfg)
    outcomes = publish_samples(cfg, library, root / "work")
    assert all(o.outcome == "published" for o in outcomes), outcomes
    box = Box(cfg, library=library, with_scheduler=False).start()
    try:
        yield box
    finally:
        box.stop()
