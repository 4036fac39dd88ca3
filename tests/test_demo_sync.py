"""The demo shows the telecom channel working: a package published at the demo centre arrives on the demo box."""

from __future__ import annotations

import pytest
import requests

from kiosk import demo as demo_mod, uplink
from kiosk.device import health
from kiosk.device.fake import FakeHardware
from kiosk.web import channels, glance

pytestmark = pytest.mark.e2e


def test_a_package_published_at_the_demo_centre_arrives_on_the_demo_box_and_the_page_says_all_is_well(tmp_path):
    parts = demo_mod.Demo(data_dir=tmp_path, temporary=False)
    try:
        demo_mod.start_parts(parts, port=0, centre_port=0, points=0)
        box = parts.box
        demo_mod.first_sync(box).join(120)
        item = requests.get(box.url + f"api/v1/items/{demo_mod.CENTRE_NOTICE['id']}", timeout=10)
        assert item.status_code == 200 and item.json()["title"] == demo_mod.CENTRE_NOTICE["title"]
        status = uplink.status(box.cfg)
        view = channels.sync_view(status["sync"])
        assert view["states"] == ["sync.ok"], view["states"]
        snap = health.snapshot(FakeHardware(), box.cfg, {"last_sent": status.get("last_sent") or 0})
        assert not any(p["state"].startswith("sync.") for p in glance.glance(snap, channels.problems(view))["problems"])
    finally:
        parts.stop()


def test_the_demo_box_trusts_the_demo_centres_publisher_key(tmp_path):
    parts = demo_mod.Demo(data_dir=tmp_path, temporary=False)
    try:
        centre = demo_mod.start_parts(parts, port=0, centre_port=0, points=0)
        trust = parts.box.cfg.path("storage.trust_dir")
        assert demo_mod.centre_public_key(centre) in [p.read_text() for p in trust.iterdir()]
    finally:
        parts.stop()
