"""A phone on the village Wi-Fi cannot take the box down: bounded connections and bodies, a watchdog with its own door.

Real sockets against the real server (waitress on a loopback port), as a phone would use it.
"""

from __future__ import annotations

import socket
import time
from typing import Iterator

import pytest
import requests

from kiosk import service
from kiosk.box import Box
from kiosk.config import Config


def _box(cfg: Config, **web: int) -> Box:
    return Box(cfg.replace(**{f"web__{k}": v for k, v in web.items()}), port=0, with_scheduler=False).start()


@pytest.fixture
def small_box(cfg: Config) -> Iterator[Box]:
    box = _box(cfg, connection_limit=5, channel_timeout_s=60, max_request_kb=64)
    yield box
    box.stop()


def _hold(box: Box, n: int) -> list[socket.socket]:
    return [socket.create_connection(("127.0.0.1", box.port)) for _ in range(n)]


def test_phones_holding_every_connection_do_not_silence_the_watchdogs_check(small_box: Box) -> None:
    held = _hold(small_box, 20)
    try:
        time.sleep(0.5)  # let the server take the connections it takes
        with pytest.raises(requests.exceptions.Timeout):
            requests.get(small_box.url + "healthz", timeout=1)  # the public door is full
        assert service.check_health(small_box.health_url, timeout=2)
        assert small_box.serving()
    finally:
        for s in held:
            s.close()


def test_the_watchdogs_door_serves_nothing_but_healthz_and_only_on_the_loopback(small_box: Box) -> None:
    assert small_box.health_url.startswith("http://127.0.0.1:")
    base = small_box.health_url.rsplit("/", 1)[0]
    assert requests.get(base + "/healthz", timeout=5).status_code == 200
    assert requests.get(base + "/admin/", timeout=5).status_code == 404
    assert requests.get(base + "/api/v1/items", timeout=5).status_code == 404


def _raw(box: Box, head: bytes, body: bytes = b"") -> bytes:
    with socket.create_connection(("127.0.0.1", box.port), timeout=10) as s:
        s.sendall(head + body)
        return s.recv(4096)


def test_a_huge_post_is_refused_before_its_body_is_read(small_box: Box) -> None:
    head = (b"POST /api/v1/plays HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 104857600\r\n\r\n")
    reply = _raw(small_box, head, b"x" * 1000)  # the other 99.99 MB never come: no need to read them
    assert reply.startswith(b"HTTP/1.1 413"), reply[:100]
    assert requests.get(small_box.url + "healthz", timeout=5).status_code == 200


def test_a_huge_chunked_post_is_refused_too(small_box: Box) -> None:
    head = b"POST /api/v1/plays HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunk = b"10000\r\n" + b"x" * 0x10000 + b"\r\n"
    reply = _raw(small_box, head, chunk * 3)
    assert reply.startswith(b"HTTP/1.1 413"), reply[:100]


def test_an_idle_connection_is_closed_after_the_channel_timeout(cfg: Config) -> None:
    box = _box(cfg, channel_timeout_s=1)
    try:
        with socket.create_connection(("127.0.0.1", box.port)) as s:
            s.settimeout(10)
            assert s.recv(1) == b""  # the server hung up on a connection that said nothing
    finally:
        box.stop()


def test_the_app_refuses_a_body_over_the_limit_behind_any_server(cfg: Config) -> None:
    from kiosk.web import create_app

    app = create_app(cfg.replace(web__max_request_kb=64), start_jobs=False)
    r = app.test_client().post("/api/v1/plays", data=b"[" + b"1," * 40_000 + b"1]", content_type="application/json",
                               headers={"Origin": "http://localhost"})
    assert r.status_code == 413


def test_a_server_whose_workers_are_all_stuck_is_not_serving(monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from kiosk import serving

    monkeypatch.setattr(serving, "WEDGED_S", 0.3)
    release = threading.Event()

    def stuck(environ, start_response):  # type: ignore[no-untyped-def]
        release.wait(30)
        start_response("200 OK", [("Content-Length", "0")])
        return [b""]

    server = serving.WebServer(stuck, "127.0.0.1", 0, 1, ident="stuck")
    held = []
    try:
        assert server.serving()
        for _ in range(2):  # one takes the only worker, the next waits for it
            s = socket.create_connection(("127.0.0.1", server.port))
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            held.append(s)
        deadline = time.monotonic() + 10
        while server.serving() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not server.serving()
        release.set()
        deadline = time.monotonic() + 10
        while not server.serving() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert server.serving()
    finally:
        release.set()
        for s in held:
            s.close()
        server.stop()
