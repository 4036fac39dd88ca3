"""`kiosk demo`: a box with the sample content on loopback, with nothing to set up.

The demo makes its own publisher key, trusts it, builds the sample packages with
the package layer (the same path real content takes) and ingests them, then
runs the box with its scheduler. `run_demo` is the main; `start_box` starts the
box part and can be combined with other parts (the county centre). The demo centre
publishes one package of its own and the demo box trusts the centre's publisher key,
so the telecom channel works end to end: the package arrives on the box over the line.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from kiosk import config as config_mod
from kiosk.box import Box, stop_signals, wait_for_signal
from kiosk.errors import KioskError

log = logging.getLogger(__name__)

SAMPLE_DIR = Path(__file__).parent / "sample_content"


def sample_sources() -> list[Path]:
    """The sample packages' source folders (kiosk.json plus data/)."""
    return sorted(p for p in SAMPLE_DIR.iterdir() if (p / "kiosk.json").is_file())


def write_box_config(data_dir: Path, port: int, *, host: str = "127.0.0.1", point_id: str = "demo-0001",
                     point_name: str = "示范村服务点", centre_url: str = "", centre_secret: str = "",
                     extra: str = "") -> Path:
    """Write the demo box's TOML configuration into its data folder and return its path."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "box.toml"
    text = (
        f'[point]\nid = "{point_id}"\nname = "{point_name}"\n\n'
        f'[storage]\ndata_dir = "{(data_dir / "box").as_posix()}"\nmin_free_percent = 0\n\n'
        f'[web]\nhost = "{host}"\nport = {port}\n\n'
        f'[hardware]\nbackend = "fake"\n\n'
        f'[centre]\nurl = "{centre_url}"\nsecret = "{centre_secret}"\n'
        f"{extra}"
    )
    path.write_text(text, encoding="utf-8")
    return path


def publish_samples(cfg: config_mod.Config, library: Any, work: Path) -> list[Any]:
    """Make a publisher key, trust it, build every sample package and ingest it; return the outcomes."""
    from kiosk.library.package import build_package
    from kiosk.library.signing import generate_key

    key = work / "publisher" / "demo-publisher.pem"
    if not key.exists():
        key.parent.mkdir(parents=True, exist_ok=True)
        generate_key(key)
    trust = cfg.path("storage.trust_dir")
    trust.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(key.with_name(key.name + ".pub"), trust / "demo-publisher.pub")
    outcomes = []
    for src in sample_sources():
        out = work / "packages" / f"{src.name}.tar"
        if not out.exists():
            build_package(src, key, out)
        outcome = library.ingest(out, source="cli")
        log.info("event=sample_ingested package=%s outcome=%s reason=%s", src.name, outcome.outcome, outcome.reason)
        outcomes.append(outcome)
    return outcomes


def start_box(data_dir: Path, port: int = 8080, trusted: dict[str, str] | None = None, **config: Any) -> Box:
    """Start a demo box serving the sample content on the loopback; `config` goes to write_box_config.

    `trusted` maps a file name to a public key (PEM) the box also trusts (the demo centre's).
    """
    from kiosk.library import Library

    cfg = config_mod.load(write_box_config(data_dir, port, **config), env={})
    for name, pem in (trusted or {}).items():
        trust = cfg.path("storage.trust_dir")
        trust.mkdir(parents=True, exist_ok=True)
        (trust / name).write_text(pem, encoding="ascii")
    library = Library(cfg)
    try:
        outcomes = publish_samples(cfg, library, data_dir)
        rejected = [o for o in outcomes if o.rejected]
        if rejected:
            raise KioskError(f"sample package {rejected[0].source} was rejected: {rejected[0].reason} {rejected[0].detail}")
        return Box(cfg, library=library).start()
    except BaseException:
        library.close()
        raise


# --- the county centre part of the demo -------------------------------------------------

CENTRE_USER = "admin"
CENTRE_PASSWORD = "kiosk-demo"  # printed by the demo; a demo centre only listens on the loopback


def start_centre(data_dir: Path, port: int = 8090, points: int = 30, heartbeat_s: int = 30) -> Any:
    """Start a county centre on the loopback with a staff login and N simulated points reporting."""
    from kiosk.centre.server import CentreServer

    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "centre.toml"
    path.write_text(
        f'[storage]\ndata_dir = "{data_dir.as_posix()}"\n\n'
        f'[centre]\nhost = "127.0.0.1"\nport = {port}\nheartbeat_interval_s = {heartbeat_s}\n'
        f"offline_after_s = {heartbeat_s * 4}\ncounty = \"示范县\"\n",
        encoding="utf-8",
    )
    centre = CentreServer(config_mod.load(path, env={})).start()
    centre.store.set_user(CENTRE_USER, CENTRE_PASSWORD)
    if points > 0:
        centre.simulate(points, days=2, interval_s=heartbeat_s)
    return centre


CENTRE_NOTICE = {
    "id": "county-notice-demo", "version": 1, "title": "县文化站通知：送戏下乡安排",
    "description": "本月县剧团到各村演出的时间和地点。这个节目由示范县中心发布，经网络下载到本点。",
    "language": "zh-CN", "tags": ["通知", "送戏下乡"], "category": "local", "main": "notice.html", "priority": 5,
}
NOTICE_HTML = """<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><title>送戏下乡安排</title></head>
<body><h1>送戏下乡安排</h1><p>本月十五日晚七点，县剧团在村文化广场演出《穆桂英挂帅》。</p>
<p>请村民带好板凳，注意安全。</p></body></html>
"""


def publish_centre_notice(centre: Any, work: Path) -> None:
    """Publish one package at the demo centre, for the demo box to fetch over the line (telecom sync)."""
    import json

    from kiosk.library.record import parse_record

    src = work / "centre-notice"
    (src / "data").mkdir(parents=True, exist_ok=True)
    (src / "kiosk.json").write_text(json.dumps(CENTRE_NOTICE, ensure_ascii=False), encoding="utf-8")
    (src / "data" / "notice.html").write_text(NOTICE_HTML, encoding="utf-8")
    record = parse_record((src / "kiosk.json").read_bytes())
    publisher = centre.app.extensions["centre"]["publisher"]
    if any(p["id"] == record.id and p["version"] == record.version for p in publisher.packages()):
        return  # a demo run on a kept data folder published it before
    publisher.publish(src, user="demo")


def centre_public_key(centre: Any) -> str:
    """The demo centre's publisher public key (PEM), for the demo box's trust folder."""
    return centre.app.extensions["centre"]["publisher"].public_key_pem()


def first_sync(box: Box) -> threading.Thread:
    """Look at the centre's index at once (the scheduler's first look waits a while), in the background."""
    from kiosk.uplink import sync

    def run() -> None:
        try:
            result = sync.run(box.cfg, box.library)
            log.info("event=demo_first_sync outcomes=%s", [o.outcome for o in result.outcomes])
        except Exception as e:  # the device page shows why
            log.warning("event=demo_first_sync_failed error=%r", e)

    thread = threading.Thread(target=run, name="demo-first-sync", daemon=True)
    thread.start()
    return thread


def start_parts(demo: "Demo", port: int, centre_port: int, points: int) -> Any:
    """The demo centre (with a package published) and the demo box enrolled at it, trusting its key; returns the centre."""
    try:
        centre = start_centre(demo.data_dir / "centre", port=centre_port, points=points)
    except OSError as e:
        raise KioskError(f"cannot listen on port {centre_port} ({e.strerror}); try --centre-port 0 for a free one") from None
    demo.others.append(centre)
    publish_centre_notice(centre, demo.data_dir / "centre")
    secret = centre.store.enroll("demo-0001", name="示范村服务点", township="城关镇")
    try:
        demo.box = start_box(demo.data_dir / "point", port=port, centre_url=centre.url.rstrip("/"),
                             centre_secret=secret, extra="heartbeat_interval_s = 30\n",
                             trusted={"demo-centre.pub": centre_public_key(centre)})
    except OSError as e:
        raise KioskError(f"cannot listen on port {port} ({e.strerror}); try --port 0 for a free one") from None
    first_sync(demo.box)
    return centre


@dataclass
class Demo:
    """Everything the demo started, so it can all be stopped together."""

    data_dir: Path
    temporary: bool
    box: Box | None = None
    others: list[Any] = field(default_factory=list)  # other parts with .stop() (the centre)

    def stop(self) -> None:
        """Stop every part, newest first; remove a temporary data folder."""
        for part in reversed(self.others):
            try:
                part.stop()
            except Exception as e:
                log.warning("event=demo_part_stop_failed error=%r", e)
        if self.box is not None:
            self.box.stop()
        if self.temporary:
            shutil.rmtree(self.data_dir, ignore_errors=True)


def run_demo(args: argparse.Namespace, say: Callable[[str], None]) -> int:
    """The demo's main: start the parts, print where to look, run until Ctrl-C or SIGTERM."""
    temporary = not getattr(args, "data", None)
    data_dir = Path(tempfile.mkdtemp(prefix="kiosk-demo-")) if temporary else Path(args.data).resolve()
    demo = Demo(data_dir=data_dir, temporary=temporary)
    # Signals are caught from the start: Ctrl-C while parts start still stops them all.
    with stop_signals() as stop:
        try:
            centre = start_parts(demo, port=args.port, centre_port=getattr(args, "centre_port", 8090),
                                 points=getattr(args, "points", 30))
            say("")
            say("Field Kiosk demo is running.")
            say(f"  村级服务点 touch screens (the box):  {demo.box.url}")
            say(f"  device page:                        {demo.box.url}admin")
            say(f"  县级中心 county centre:               {centre.url}  (login {CENTRE_USER} / {CENTRE_PASSWORD})")
            say(f"  data folder: {data_dir}{' (removed on exit)' if temporary else ''}")
            say("Press Ctrl-C to stop.")
            wait_for_signal(demo.box, stop=stop)
        finally:
            demo.stop()
    return 0
