"""kiosk/service.py: readiness and watchdog pings over a real notification socket."""

from __future__ import annotations

import http.server
import os
import socket
import threading
import time
from pathlib import Path

import pytest

from kiosk import service


@pytest.fixture
def notify_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A datagram socket standing in for systemd's NOTIFY_SOCKET."""
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(5)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    yield sock
    sock.close()


class _Health(http.server.BaseHTTPRequestHandler):
    healthy = True

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        code = 200 if self.path == "/healthz" and type(self).healthy else 503
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def health_server():
    """A real HTTP server on a loopback port whose /healthz can be made to fail."""
    handler = type("Handler", (_Health,), {"healthy": True})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, handler
    server.shutdown()
    server.server_close()


def _messages(sock: socket.socket, count: int) -> list[str]:
    return [sock.recv(4096).decode() for _ in range(count)]


def test_it_says_ready_on_the_notification_socket(notify_socket: socket.socket) -> None:
    service.notify_ready()
    assert "READY=1" in _messages(notify_socket, 1)[0].splitlines()


def test_it_does_nothing_outside_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    service.notify_ready()
    assert service.start_watchdog("http://127.0.0.1:1/healthz", env={"WATCHDOG_USEC": "2000000"}) is None


def test_it_pings_at_half_the_watchdog_period_for_its_own_pid() -> None:
    env = {"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "20000000", "WATCHDOG_PID": str(os.getpid())}
    assert service.watchdog_interval(env) == 10.0
    assert service.watchdog_interval({**env, "WATCHDOG_PID": "1"}) is None
    assert service.watchdog_interval({"NOTIFY_SOCKET": "/run/x"}) is None


def test_it_pings_the_watchdog_only_while_healthz_answers(notify_socket: socket.socket, health_server, monkeypatch: pytest.MonkeyPatch) -> None:
    server, handler = health_server
    monkeypatch.setenv("WATCHDOG_USEC", "200000")  # 0.2 s: a ping every 0.1 s
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    dog = service.start_watchdog(f"http://127.0.0.1:{server.server_address[1]}/healthz")
    assert dog is not None
    try:
        assert _messages(notify_socket, 2) == ["WATCHDOG=1", "WATCHDOG=1"]
        handler.healthy = False
        deadline = time.monotonic() + 10
        while dog.misses < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        pings_while_sick = dog.pings
        # drain what was sent before the server fell sick, then expect silence
        notify_socket.settimeout(0.05)
        try:
            while True:
                notify_socket.recv(4096)
        except socket.timeout:
            pass
        time.sleep(0.5)
        assert dog.pings == pings_while_sick
        with pytest.raises(socket.timeout):
            notify_socket.recv(4096)
    finally:
        dog.stop()


def test_it_reports_a_dead_server_as_unhealthy() -> None:
    from tests.conftest import free_port

    assert service.check_health(f"http://127.0.0.1:{free_port()}/healthz", timeout=1) is False


@pytest.mark.e2e
def test_kiosk_run_tells_systemd_it_is_ready_pings_the_watchdog_and_says_when_it_stops(cfg_path: Path, tmp_path: Path) -> None:
    """The real `kiosk run` as systemd starts it: NOTIFY_SOCKET and WATCHDOG_USEC set."""
    import subprocess
    import sys

    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(60)
    env = {**os.environ, "NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "1000000"}
    env.pop("WATCHDOG_PID", None)
    proc = subprocess.Popen([sys.executable, "-m", "kiosk.cli", "run", "--config", str(cfg_path)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        seen: list[str] = []
        while not any(m.startswith("READY=1") for m in seen) or "WATCHDOG=1" not in seen:
            seen.append(sock.recv(4096).decode())
        proc.terminate()
        assert proc.wait(timeout=60) == 0
        sock.settimeout(5)
        rest: list[str] = []
        try:
            while "STOPPING=1" not in rest:
                rest.append(sock.recv(4096).decode())
        except socket.timeout:
            pass
        assert "STOPPING=1" in rest
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        sock.close()
