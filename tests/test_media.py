"""Media under /media: Range (206), 416, ETag and If-None-Match, content types, no path escape.

Served by the real box (waitress on loopback) over real HTTP.
"""

from __future__ import annotations

import hashlib
import socket
from pathlib import Path
from typing import Iterator

import pytest
import requests

from kiosk.demo import SAMPLE_DIR
from tests.webbox import running_box

VIDEO = SAMPLE_DIR / "pig-farming-video" / "data" / "video.mp4"
VIDEO_BYTES = VIDEO.read_bytes()
SIZE = len(VIDEO_BYTES)
ETAG = '"' + hashlib.sha256(VIDEO_BYTES).hexdigest() + '"'


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_box(tmp_path_factory.mktemp("media")) as box:
        yield box.url.rstrip("/")


@pytest.fixture(scope="module")
def video_url(base: str) -> str:
    item = requests.get(f"{base}/api/v1/items/sample-pig-farming", timeout=10).json()
    url = next(f["url"] for f in item["files"] if f["path"] == "video.mp4")
    return base + url


def get(url: str, **headers: str) -> requests.Response:
    return requests.get(url, headers=headers, timeout=10)


def test_a_whole_file_comes_with_its_type_length_etag_and_accept_ranges(video_url: str) -> None:
    r = get(video_url)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "video/mp4"
    assert int(r.headers["Content-Length"]) == SIZE
    assert r.headers["ETag"] == ETAG
    assert r.headers["Accept-Ranges"] == "bytes"
    assert r.content == VIDEO_BYTES


def test_a_closed_range_answers_206_with_exactly_those_bytes(video_url: str) -> None:
    r = get(video_url, Range="bytes=100-199")
    assert r.status_code == 206
    assert r.headers["Content-Range"] == f"bytes 100-199/{SIZE}"
    assert int(r.headers["Content-Length"]) == 100
    assert r.content == VIDEO_BYTES[100:200]


def test_an_open_ended_range_runs_to_the_end(video_url: str) -> None:
    r = get(video_url, Range=f"bytes={SIZE - 1000}-")
    assert r.status_code == 206
    assert r.headers["Content-Range"] == f"bytes {SIZE - 1000}-{SIZE - 1}/{SIZE}"
    assert r.content == VIDEO_BYTES[-1000:]


def test_a_suffix_range_gives_the_last_bytes(video_url: str) -> None:
    r = get(video_url, Range="bytes=-500")
    assert r.status_code == 206
    assert r.headers["Content-Range"] == f"bytes {SIZE - 500}-{SIZE - 1}/{SIZE}"
    assert r.content == VIDEO_BYTES[-500:]


def test_a_suffix_longer_than_the_file_gives_the_whole_file(video_url: str) -> None:
    r = get(video_url, Range=f"bytes=-{SIZE * 2}")
    assert r.status_code == 206
    assert r.headers["Content-Range"] == f"bytes 0-{SIZE - 1}/{SIZE}"
    assert r.content == VIDEO_BYTES


def test_a_range_ending_past_the_file_is_cut_at_its_end(video_url: str) -> None:
    r = get(video_url, Range=f"bytes={SIZE - 10}-{SIZE + 5000}")
    assert r.status_code == 206
    assert r.headers["Content-Range"] == f"bytes {SIZE - 10}-{SIZE - 1}/{SIZE}"
    assert r.content == VIDEO_BYTES[-10:]


@pytest.mark.parametrize("rng", [f"bytes={SIZE}-", f"bytes={SIZE + 10}-{SIZE + 20}", "bytes=-0"])
def test_an_unsatisfiable_range_answers_416_with_the_length(video_url: str, rng: str) -> None:
    r = get(video_url, Range=rng)
    assert r.status_code == 416
    assert r.headers["Content-Range"] == f"bytes */{SIZE}"


@pytest.mark.parametrize("rng", ["bytes=0-9,20-29", "items=0-9", "bytes=abc", "bytes=20-10"])
def test_several_ranges_or_a_malformed_range_get_the_whole_file(video_url: str, rng: str) -> None:
    r = get(video_url, Range=rng)
    assert r.status_code == 200
    assert r.content == VIDEO_BYTES


def test_a_matching_if_none_match_answers_304_without_a_body(video_url: str) -> None:
    r = get(video_url, **{"If-None-Match": ETAG})
    assert r.status_code == 304
    assert r.content == b""
    assert r.headers["ETag"] == ETAG


def test_if_none_match_wins_over_range(video_url: str) -> None:
    r = get(video_url, Range="bytes=0-9", **{"If-None-Match": f'"other", {ETAG}'})
    assert r.status_code == 304


def test_a_stale_etag_gets_the_file(video_url: str) -> None:
    r = get(video_url, **{"If-None-Match": '"not-this-one"'})
    assert r.status_code == 200
    assert r.content == VIDEO_BYTES


def test_an_if_range_that_does_not_match_gets_the_whole_file(video_url: str) -> None:
    r = get(video_url, Range="bytes=0-9", **{"If-Range": '"stale"'})
    assert r.status_code == 200
    assert len(r.content) == SIZE
    r = get(video_url, Range="bytes=0-9", **{"If-Range": ETAG})
    assert r.status_code == 206
    assert r.content == VIDEO_BYTES[:10]


def test_head_gives_the_headers_without_the_body(video_url: str) -> None:
    r = requests.head(video_url, timeout=10)
    assert r.status_code == 200
    assert int(r.headers["Content-Length"]) == SIZE
    assert r.content == b""


@pytest.mark.parametrize("path,ctype", [
    ("/media/sample-hypertension/1/guide.pdf", "application/pdf"),
    ("/media/sample-corn-sowing/1/article.html", "text/html; charset=utf-8"),
    ("/media/sample-henan-opera/1/01-mulan.jpg", "image/jpeg"),
])
def test_each_media_type_is_served_with_its_content_type(base: str, path: str, ctype: str) -> None:
    r = get(base + path)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == ctype
    assert r.headers["X-Content-Type-Options"] == "nosniff"


def test_an_article_is_served_sandboxed_so_its_scripts_never_run(base: str) -> None:
    r = get(base + "/media/sample-corn-sowing/1/article.html")
    assert "sandbox" in r.headers["Content-Security-Policy"]
    assert "allow-scripts" not in r.headers["Content-Security-Policy"]


@pytest.mark.parametrize("path", [
    "/media/nope/1/video.mp4",
    "/media/sample-pig-farming/2/video.mp4",
    "/media/sample-pig-farming/1/missing.mp4",
])
def test_an_unknown_item_version_or_file_is_404(base: str, path: str) -> None:
    assert get(base + path).status_code == 404


def _raw_get(base: str, target: str) -> int:
    """Send a request line exactly as written (no client-side path normalising); return the status."""
    host, port = base.split("//", 1)[1].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(f"GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return int(data.split(b" ", 2)[1])


@pytest.mark.parametrize("target", [
    "/media/sample-pig-farming/1/../../../../etc/passwd",
    "/media/sample-pig-farming/1/%2e%2e/%2e%2e/kiosk.toml",
    "/media/sample-pig-farming/1/..%2f..%2f..%2fkiosk.toml",
    "/media/sample-pig-farming/1//etc/passwd",
    "/media/sample-pig-farming/1/..%5c..%5ckiosk.toml",
    "/media/sample-pig-farming/1/%00video.mp4",
    "/media/sample-pig-farming/1/../../../tagmanifest-sha256.txt",
    "/media/sample-pig-farming/1/../kiosk.json",
])
def test_paths_that_try_to_escape_the_store_are_404(base: str, target: str) -> None:
    assert _raw_get(base, target) == 404


def test_a_file_outside_data_is_not_served_even_when_it_exists(base: str, tmp_path: Path) -> None:
    # kiosk.json sits beside data/ in the store; the payload URL space must not reach it.
    assert _raw_get(base, "/media/sample-pig-farming/1/kiosk.json") == 404
