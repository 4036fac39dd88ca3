"""Telecom sync: the centre's signed index, resumable downloads, budget and window, recalls."""

from __future__ import annotations

import hashlib
import json
import os
import re
import tarfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from kiosk import clock
from kiosk.errors import KioskError, NotFound
from kiosk.library import Library
from kiosk.uplink import sync
from tests.packages import DROP, default_key, make_bag, make_key, sign, trust_dir

# 2026-06-01 12:00 local time: noon, to test the window
NOON = time.mktime((2026, 6, 1, 12, 0, 0, 0, 0, -1))


class Centre:
    """A stand-in for the county centre's package endpoints: files with Range, a signed index."""

    def __init__(self, key: Path) -> None:
        self.key = key
        self.files: dict[str, bytes] = {}
        self.drop_once: dict[str, int] = {}  # path -> bytes sent before the line drops
        self.log: list[tuple[str, str | None]] = []
        self.sent: dict[str, int] = {}
        self.trickle = 0.0  # seconds between 64 KiB pieces of a package: a slow line
        centre = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                rng = self.headers.get("Range")
                centre.log.append((self.path, rng))
                body = centre.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                start = 0
                end = len(body) - 1
                m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng or "")
                if m:
                    start, end = int(m.group(1)), min(int(m.group(2) or end), end)
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{end}/{len(body)}")
                else:
                    self.send_response(200)
                part = body[start : end + 1]
                self.send_header("Content-Length", str(len(part)))
                self.end_headers()
                cut = centre.drop_once.pop(self.path, None)
                if cut is not None:
                    self.wfile.write(part[:cut])
                    self.wfile.flush()
                    centre.sent[self.path] = centre.sent.get(self.path, 0) + cut
                    self.close_connection = True
                    self.connection.shutdown(2)  # the line drops mid-body
                    return
                step = 65536 if centre.trickle else len(part) or 1
                try:
                    for i in range(0, len(part), step):
                        self.wfile.write(part[i : i + step])
                        centre.sent[self.path] = centre.sent.get(self.path, 0) + len(part[i : i + step])
                        if centre.trickle:
                            self.wfile.flush()
                            time.sleep(centre.trickle)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the box hung up (stopped, or its budget was spent)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def publish(self, tars: list[Path], generated: int = 1_800_000_000, key: Path | None = None, tamper: bool = False,
                targets: dict[str, Any] | None = None) -> None:
        """Serve these packages and an index of them signed by `key` (the trusted one by default)."""
        entries = []
        for tar in tars:
            data = tar.read_bytes()
            with tarfile.open(tar) as t:
                names = {m.name.split("/", 1)[-1]: m for m in t.getmembers()}
                record = json.loads(t.extractfile(names["kiosk.json"]).read())
                tagmanifest = t.extractfile(names["tagmanifest-sha256.txt"]).read()
            path = f"/api/v1/packages/{record['id']}-{record['version']}.tar"
            self.files[path] = data
            digest = hashlib.sha256(tagmanifest).hexdigest()
            if tamper:
                digest = hashlib.sha256(b"something else").hexdigest()
            entries.append({"id": record["id"], "version": record["version"], "size": len(data),
                            "tagmanifest_sha256": digest, "path": path, **({"targets": targets[record["id"]]}
                                                                         if targets and record["id"] in targets else {})})
        index = json.dumps({"generated": generated, "packages": entries}).encode()
        self.files[sync.INDEX] = index
        self.files[sync.INDEX + ".sig"] = sign(key or self.key, index)

    def package_requests(self) -> list[tuple[str, str | None]]:
        return [r for r in self.log if r[0].endswith(".tar")]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def centre(tmp_path):
    c = Centre(default_key(tmp_path))
    yield c
    c.close()


@pytest.fixture
def box(cfg, tmp_path, centre):
    c = cfg.replace(storage__trust_dir=str(trust_dir(tmp_path)), centre__url=centre.url, sync__daily_budget_mb=50, sync__timeout_s=5.0)
    lib = Library(c)
    yield c, lib
    lib.close()


def _pkg(tmp_path: Path, item_id: str, size: int = 20_000, **record) -> Path:
    return make_bag(tmp_path, files={"video.mp4": os.urandom(size)}, record={"id": item_id, **record}, tar=True)


def test_it_fetches_and_publishes_what_the_signed_index_lists_and_nothing_twice(box, centre, tmp_path):
    cfg, lib = box
    centre.publish([_pkg(tmp_path, "maize"), _pkg(tmp_path, "pigs")])
    result = sync.run(cfg, lib)
    assert sorted((o.outcome, o.id) for o in result.outcomes) == [("published", "maize"), ("published", "pigs")]
    assert lib.item("maize") and lib.item("pigs")
    assert list(sync.partial_dir(cfg).iterdir()) == []  # downloads are not kept once ingested
    asked = len(centre.package_requests())
    again = sync.run(cfg, lib)
    assert again.outcomes == [] and len(centre.package_requests()) == asked


def test_an_index_entry_whose_rollout_leaves_this_point_out_is_not_downloaded(box, centre, tmp_path):
    cfg, lib = box
    centre.publish([_pkg(tmp_path, "maize"), _pkg(tmp_path, "pigs")],
                   targets={"pigs": {"townships": ["别的镇"], "percent": 0}, "maize": {"points": [cfg.point.id]}})
    result = sync.run(cfg, lib)
    assert [(o.outcome, o.id) for o in result.outcomes] == [("published", "maize")]
    assert [p for p, _ in centre.package_requests()] == ["/api/v1/packages/maize-1.tar"]
    # widened by a newer index: now it comes
    centre.publish([_pkg(tmp_path, "pigs")], generated=1_800_000_100, targets={"pigs": {"percent": 100}})
    assert [o.id for o in sync.run(cfg, lib).outcomes] == ["pigs"]


def test_a_download_cut_off_halfway_resumes_with_range(box, centre, tmp_path):
    cfg, lib = box
    tar = _pkg(tmp_path, "maize", size=300_000)
    centre.publish([tar])
    path = "/api/v1/packages/maize-1.tar"
    half = len(centre.files[path]) // 2
    centre.drop_once[path] = half
    result = sync.run(cfg, lib)
    assert [o.outcome for o in result.outcomes] == ["published"]
    assert centre.package_requests() == [(path, None), (path, f"bytes={half}-")]
    assert centre.sent[path] == len(centre.files[path])  # the first half was not fetched again


def test_a_partial_download_left_by_a_stop_resumes_on_the_next_run(box, centre, tmp_path):
    cfg, lib = box
    centre.publish([_pkg(tmp_path, "maize", size=300_000)])
    path = "/api/v1/packages/maize-1.tar"
    centre.drop_once[path] = 1000
    stop = threading.Event()
    real = sync._fetch_range

    def fetch_then_stop(*args, **kw):
        got = real(*args, **kw)
        stop.set()  # SIGTERM arrives while the line has just dropped
        return got

    sync._fetch_range = fetch_then_stop
    try:
        assert sync.run(cfg, lib, stop=stop).outcomes == []
    finally:
        sync._fetch_range = real
    [part] = sync.partial_dir(cfg).iterdir()
    assert part.stat().st_size == 1000
    assert [o.outcome for o in sync.run(cfg, lib).outcomes] == ["published"]
    assert centre.package_requests()[-1] == (path, "bytes=1000-")


def test_an_index_not_signed_by_a_trusted_key_is_refused_and_nothing_is_fetched(box, centre, tmp_path):
    cfg, lib = box
    stranger = make_key(tmp_path / "other" / "stranger.pem")
    centre.publish([_pkg(tmp_path, "maize")], key=stranger)
    with pytest.raises(KioskError, match="not signed by a trusted key"):
        sync.run(cfg, lib)
    assert centre.package_requests() == []


def test_an_older_index_than_the_last_one_is_refused(box, centre, tmp_path):
    cfg, lib = box
    centre.publish([_pkg(tmp_path, "maize")], generated=2_000)
    sync.run(cfg, lib)
    centre.publish([_pkg(tmp_path, "pigs")], generated=1_000)  # a replayed, older index
    assert sync.run(cfg, lib).skipped == "stale_index"
    with pytest.raises(NotFound):
        lib.item("pigs")


def test_a_file_that_does_not_match_the_index_is_not_ingested(box, centre, tmp_path):
    cfg, lib = box
    centre.publish([_pkg(tmp_path, "maize")], tamper=True)
    [outcome] = sync.run(cfg, lib).outcomes
    assert outcome.outcome == "rejected" and outcome.reason == "bad_hash"
    with pytest.raises(NotFound):
        lib.item("maize")


def test_the_daily_budget_is_respected_and_the_rest_follows_the_next_day(box, centre, tmp_path):
    cfg, lib = box
    cfg = cfg.replace(sync__daily_budget_mb=1)
    budget = 1 << 20
    centre.publish([_pkg(tmp_path, f"film-{i}", size=400_000) for i in range(4)])
    with clock.use(clock.FrozenClock(NOON)) as frozen:
        first = sync.run(cfg, lib)
        assert first.skipped == "budget"
        assert len(first.outcomes) == 2
        assert sum(centre.sent.values()) <= budget  # packages; the index is counted too
        assert sync.status(cfg)["used_bytes"] <= budget
        assert sync.run(cfg, lib).skipped == "budget"  # nothing more today
        frozen.advance(86400)
        second = sync.run(cfg, lib)
    assert second.skipped is None and len(second.outcomes) == 2
    assert all(lib.item(f"film-{i}") for i in range(4))
    package_bytes = sum(len(v) for k, v in centre.files.items() if k.endswith(".tar"))
    assert sum(centre.sent[k] for k in centre.sent if k.endswith(".tar")) == package_bytes  # resumed, not restarted


def test_downloads_happen_only_within_the_window(box, centre, tmp_path):
    cfg, lib = box
    cfg = cfg.replace(sync__window="22-06")
    centre.publish([_pkg(tmp_path, "maize")])
    with clock.use(clock.FrozenClock(NOON)) as frozen:
        assert sync.run(cfg, lib).skipped == "window"
        assert centre.log == []  # not even the index
        frozen.advance(11 * 3600)  # 23:00
        assert [o.outcome for o in sync.run(cfg, lib).outcomes] == ["published"]


def test_a_withdrawal_listed_in_the_index_takes_the_item_off_the_screens(box, centre, tmp_path):
    cfg, lib = box
    maize = _pkg(tmp_path, "maize")
    centre.publish([maize])
    sync.run(cfg, lib)
    assert lib.item("maize")
    recall = make_bag(tmp_path, record={"id": "recall-maize", "withdraws": ["maize"], "main": DROP, "title": DROP}, tar=True)
    centre.publish([maize, recall], generated=1_800_000_100)
    [outcome] = sync.run(cfg, lib).outcomes
    assert outcome.outcome == "published" and outcome.id == "recall-maize"
    with pytest.raises(NotFound):
        lib.item("maize")
    assert sync.run(cfg, lib).outcomes == []  # the withdrawn item is not fetched again


def test_nothing_happens_without_a_centre_or_with_sync_disabled(cfg, tmp_path):
    assert sync.run(cfg, None).skipped == "disabled"
    assert sync.run(cfg.replace(centre__url="http://127.0.0.1:9", sync__enabled=False), None).skipped == "disabled"


def test_the_window_wraps_midnight():
    at = lambda h: time.mktime((2026, 6, 1, h, 30, 0, 0, 0, -1))  # noqa: E731
    assert [h for h in range(24) if sync.in_window("22-06", at(h))] == [0, 1, 2, 3, 4, 5, 22, 23]
    assert [h for h in range(24) if sync.in_window("9-17", at(h))] == list(range(9, 17))
    assert all(sync.in_window("", at(h)) for h in range(24))


def test_a_centre_without_a_package_index_is_not_an_error(box, centre):
    cfg, lib = box
    assert sync.run(cfg, lib).skipped == "no_index"


def test_a_package_missing_on_the_centre_does_not_hold_up_the_others(box, centre, tmp_path):
    cfg, lib = box
    centre.publish([_pkg(tmp_path, "maize", size=1000), _pkg(tmp_path, "pigs", size=2000)])
    del centre.files["/api/v1/packages/maize-1.tar"]
    result = sync.run(cfg, lib)
    assert [(o.outcome, o.id) for o in result.outcomes] == [("published", "pigs")]
    with pytest.raises(NotFound):
        lib.item("maize")


@pytest.mark.e2e
def test_a_box_syncs_from_the_real_county_centre_and_applies_its_withdrawal(cfg_path, cfg, tmp_path):
    from kiosk.centre.server import CentreServer
    from tests.centre_helpers import centre_config

    sample = Path(__file__).resolve().parent.parent / "kiosk" / "sample_content" / "child-water-safety"
    (tmp_path / "centre-data").mkdir()
    server = CentreServer(centre_config(cfg_path, str(tmp_path / "centre.sqlite"), KIOSK_STORAGE_DATA_DIR=str(tmp_path / "centre-data"),
                                        KIOSK_CENTRE_HOST="127.0.0.1", KIOSK_CENTRE_PORT="0")).start()
    try:
        publisher = server.app.extensions["centre"]["publisher"]
        entry = publisher.publish(sample, user="staff")
        trust = tmp_path / "box-trust"
        trust.mkdir()
        (trust / "centre.pub").write_text(publisher.public_key_pem())
        box_cfg = cfg.replace(centre__url=server.url, storage__trust_dir=str(trust))
        lib = Library(box_cfg)
        try:
            [outcome] = sync.run(box_cfg, lib).outcomes
            assert (outcome.outcome, outcome.id) == ("published", entry["id"])
            publisher.withdraw([entry["id"]], user="staff")
            [recall] = sync.run(box_cfg, lib).outcomes
            assert recall.outcome == "published" and recall.id.startswith("recall-")
            with pytest.raises(NotFound):
                lib.item(entry["id"])
        finally:
            lib.close()
    finally:
        server.stop()
