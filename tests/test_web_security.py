"""The box server's headers: package files never run script on the box's origin; no sniffing; no framing."""

from __future__ import annotations

import base64
import threading
from urllib.parse import urlsplit

import pytest

from kiosk import config as config_mod
from kiosk.device import history
from kiosk.device.fake import FakeHardware
from kiosk.library import Library
from kiosk.web import auth, create_app, headers
from tests.conftest import free_port
from tests.packages import make_bag, trust_dir

PASSWORD = "dongfeng-2024"
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")

# Each hostile file marks the page when its script runs, then tries what an attacker wants:
# read the device page with the administrator's cookie, take the CSRF token, pin an item.
ATTACK_JS = """
document.title = 'RAN';
fetch('/admin/', {credentials: 'include'}).then(r => r.text()).then(t => {
  var m = t.match(/name="csrf" value="([^"]+)"/);
  var body = new URLSearchParams({csrf: m ? m[1] : '', pinned: '1'});
  return fetch('/admin/items/pig-farming/pin', {method: 'POST', body: body, credentials: 'include'});
});
"""
EVIL_SVG = f"""<svg xmlns="http://www.w3.org/2000/svg" width="200" height="100">
<rect width="200" height="100" fill="#2a7"/><script>//<![CDATA[
{ATTACK_JS}
//]]></script></svg>""".encode()
EVIL_XHTML = f"""<?xml version="1.0" encoding="utf-8"?>
<html xmlns="http://www.w3.org/1999/xhtml"><head><title>通知</title></head>
<body><p>村里的通知</p><script>//<![CDATA[
{ATTACK_JS}
//]]></script></body></html>""".encode()
ARTICLE = f"""<!doctype html><html><head><meta charset="utf-8"><title>冬季养猪</title>
<style>p.lead {{ color: rgb(0, 128, 0); }}</style></head>
<body><p class="lead">冬季猪舍要保暖。</p><img id="pic" src="pic.png" alt="猪舍">
<script>{ATTACK_JS}</script></body></html>""".encode()


@pytest.fixture
def evil_box(cfg, tmp_path):
    """A box with the ordinary item and a trusted package that carries script in several forms."""
    cfg = cfg.replace(storage__trust_dir=str(trust_dir(tmp_path)))
    lib = Library(cfg)
    assert lib.ingest(make_bag(tmp_path)).outcome == "published"
    files = {"article.html": ARTICLE, "evil.svg": EVIL_SVG, "evil.xhtml": EVIL_XHTML, "pic.png": PNG,
             "evil.xml": b'<?xml version="1.0"?><doc/>', "video.mp4": b"\x00\x00\x00\x18ftypmp42"}
    bag = make_bag(tmp_path, files=files, record={"id": "notice", "title": "村里的通知", "main": "article.html",
                                                  "category": "local"})
    assert lib.ingest(bag).outcome == "published"
    yield cfg, lib
    lib.close()
    history.close_all()


@pytest.fixture
def client(evil_box):
    cfg, lib = evil_box
    return create_app(cfg, FakeHardware(), library=lib, start_jobs=False).test_client()


@pytest.mark.parametrize("path,policy", [
    ("evil.svg", headers.DOCUMENT_POLICY),
    ("evil.xml", headers.DOCUMENT_POLICY),
    ("evil.xhtml", headers.ARTICLE_POLICY),
    ("article.html", headers.ARTICLE_POLICY),
    ("pic.png", None),
    ("video.mp4", None),
])
def test_package_files_that_can_carry_script_are_served_sandboxed(client, path, policy):
    r = client.get(f"/media/notice/1/{path}")
    assert r.status_code == 200
    assert r.headers.get("X-Content-Type-Options") == "nosniff"
    if policy is None:
        assert "sandbox" not in r.headers.get("Content-Security-Policy", "")
    else:
        csp = r.headers["Content-Security-Policy"]
        assert csp == policy and csp.startswith("sandbox") and "allow-scripts" not in csp


def test_a_type_declared_by_a_package_is_sandboxed_unless_known_to_be_passive():
    assert headers.payload_policy("text/html; charset=utf-8") == headers.ARTICLE_POLICY
    assert headers.payload_policy("image/svg+xml") == headers.DOCUMENT_POLICY
    assert headers.payload_policy("application/x-unknown") == headers.DOCUMENT_POLICY
    assert headers.payload_policy("text/xsl") == headers.DOCUMENT_POLICY
    assert headers.payload_policy("video/mp4") is None and headers.payload_policy("application/pdf") is None


@pytest.mark.parametrize("path", ["/", "/healthz", "/api/v1/items", "/api/v1/nothing-here", "/admin/login", "/admin/",
                                  "/static/kiosk.css", "/media/notice/1/pic.png", "/no-such-page", "/media/notice/9/x"])
def test_every_response_says_nosniff_and_cannot_be_framed_by_another_site(client, path):
    r = client.get(path)
    assert r.headers.get("X-Content-Type-Options") == "nosniff"
    if path.startswith("/admin"):
        assert r.headers["X-Frame-Options"] == "DENY" and "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
    else:
        assert r.headers["X-Frame-Options"] == "SAMEORIGIN" and "frame-ancestors 'self'" in r.headers["Content-Security-Policy"]


def test_the_admin_cookie_is_httponly_and_samesite_strict(client, evil_box):
    auth.set_password(evil_box[0], PASSWORD)
    page = client.get("/admin/login").text
    token = page.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    r = client.post("/admin/login", data={"csrf": token, "password": PASSWORD})
    assert r.status_code == 302
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie


# --- in Debian's Chromium ------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


@pytest.fixture
def served(evil_box):
    from waitress.server import create_server

    cfg, lib = evil_box
    auth.set_password(cfg, PASSWORD)
    port = free_port()
    server = create_server(create_app(cfg, FakeHardware(), library=lib, start_jobs=False), host="127.0.0.1", port=port, threads=4)
    threading.Thread(target=server.run, daemon=True).start()
    yield f"http://127.0.0.1:{port}", lib
    server.close()


@pytest.mark.browser
@pytest.mark.e2e
def test_script_in_a_package_cannot_read_the_device_page_in_chromium(served, browser):
    url, lib = served
    ctx = browser.new_context()
    page = ctx.new_page()
    page.goto(url + "/admin/login")
    page.fill('input[name="password"]', PASSWORD)
    page.click('button[type="submit"]')
    page.wait_for_selector("#glance")
    admin_requests: list[str] = []
    page.on("request", lambda req: admin_requests.append(req.url) if urlsplit(req.url).path.startswith("/admin") else None)
    for path in ("evil.svg", "evil.xhtml", "article.html"):
        page.goto(f"{url}/media/notice/1/{path}")
        page.wait_for_load_state("load")
        page.wait_for_timeout(300)  # give a script that would run the time to run (not a timing assert)
        assert page.title() != "RAN", path
    page.goto(url + "/read/notice")
    frame = page.frame_locator("#doc")
    frame.locator("p.lead").wait_for()
    page.wait_for_timeout(300)
    assert admin_requests == []
    assert lib.item("pig-farming").pinned is False
    # the article stays readable: its own style applies and its picture shows
    assert frame.locator("p.lead").evaluate("el => getComputedStyle(el).color") == "rgb(0, 128, 0)"
    assert frame.locator("#pic").evaluate("el => el.complete && el.naturalWidth") == 1
    ctx.close()


@pytest.mark.browser
@pytest.mark.e2e
def test_the_device_page_cannot_be_put_in_a_frame(served, browser):
    url, _ = served
    ctx = browser.new_context()
    page = ctx.new_page()
    page.goto(url + "/")  # a page of the box itself: not even it may frame the device page
    with page.expect_response(lambda r: "/admin/login" in r.url):
        page.evaluate(f"""() => {{ const f = document.createElement('iframe'); f.id = 'f';
            f.src = '{url}/admin/login'; document.body.appendChild(f); }}""")
    page.wait_for_timeout(300)
    assert page.frame_locator("#f").locator('input[name="password"]').count() == 0
    page.goto(url + "/read/notice")  # while the box's own articles still show in the reading screen
    assert page.frame_locator("#doc").locator("p.lead").count() == 1
    ctx.close()
