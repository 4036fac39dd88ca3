"""Sending heartbeats to a real HTTP server on the loopback that checks them with kiosk.wire."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any, Iterator

import pytest
from flask import Flask, jsonify, request
from werkzeug.serving import make_server

from kiosk import clock, wire
from kiosk.clock import FrozenClock
from kiosk.config import Config
from kiosk.device.fake import FakeHardware
from kiosk.uplink import client as client_mod
from kiosk.uplink import heartbeat_job, status
from kiosk.uplink.client import backoff_s, drain, retry_after_seconds
from kiosk.uplink.outbox import Outbox
from tests.conftest import free_port

SECRET = "point-secret-for-tests"


class FakeCentre:
    """A small centre: checks the HMAC and the body with kiosk.wire, stores each (point, seq) once.

    `script` holds what to do with the next requests: "ok", "500", "drop" (store, then cut
    the connection before answering), "slow" (store, then answer too late), ("busy", s)
    (429 with Retry-After s), "ack-none", and acknowledgements the box must not believe:
    "ack-forged", "ack-unsigned", "ack-replayed" (each stores nothing).
    """

    def __init__(self, check_clock: bool = False) -> None:
        self.stored: dict[tuple[str, int], dict[str, Any]] = {}
        self.order: list[int] = []
        self.requests: list[list[int]] = []
        self.script: list[Any] = []
        self.check_clock = check_clock
        self.refused: list[int] = []
        self.refuse_all = False
        self.lock = threading.Lock()
        app = Flask(__name__)

        @app.post(wire.HEARTBEATS_PATH)
        def heartbeats() -> Any:
            body = request.get_data()
            try:
                point, ts, sig = wire.parse_authorization(request.headers.get("Authorization"))
                if point != "test-point":
                    raise wire.WireError("unknown point", 401)
                wire.check_signature(SECRET, "POST", request.path, ts, body, sig)
                if self.check_clock and abs(ts - time.time()) > wire.MAX_SKEW_S:
                    self.refused.append(ts)
                    return jsonify(error="clock", server_time=time.time()), 401
                reports = wire.decode_batch(body)
            except wire.WireError as e:
                return jsonify(error=str(e)), e.status
            with self.lock:
                action = self.script.pop(0) if self.script else "ok"
                self.requests.append([r["seq"] for r in reports])
            if self.refuse_all or any(r.get("poison") for r in reports):
                return jsonify(error="bad_report"), 400
            if action == "500":
                return jsonify(error="database is down"), 500
            if isinstance(action, tuple) and action[0] == "busy":
                return jsonify(error="busy"), 429, {"Retry-After": str(action[1])}
            if action == "ack-none":
                return jsonify(acked=[], server_time=time.time())
            seqs = [r["seq"] for r in reports]
            if action == "ack-forged":  # someone between box and centre answers for it
                return jsonify(acked=seqs, ack_sig=wire.ack_signature("not-the-secret", sig, seqs), server_time=time.time())
            if action == "ack-unsigned":
                return jsonify(acked=seqs, server_time=time.time())
            if action == "ack-replayed":  # an answer the centre gave to another request
                return jsonify(acked=seqs, ack_sig=wire.ack_signature(SECRET, "0" * 64, seqs), server_time=time.time())
            with self.lock:
                for r in reports:
                    if (point, r["seq"]) not in self.stored:
                        self.stored[(point, r["seq"])] = r
                        self.order.append(r["seq"])
            if action == "drop":
                sock = request.environ["werkzeug.socket"]
                sock.shutdown(socket.SHUT_RDWR)
                sock.close()
                return "", 200
            if action == "slow":
                time.sleep(1.5)
            return jsonify(acked=seqs, ack_sig=wire.ack_signature(SECRET, sig, seqs), server_time=time.time())

        self.port = free_port()
        self.server = make_server("127.0.0.1", self.port, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def centre() -> Iterator[FakeCentre]:
    c = FakeCentre()
    yield c
    c.close()


@pytest.fixture
def box(cfg: Config, centre: FakeCentre) -> Config:
    """The test box, reporting to the fake centre, without the random reconnect pause."""
    return cfg.replace(centre__url=centre.url, centre__secret=SECRET, centre__batch_size=5, centre__reconnect_delay_s=0)


def fill(cfg: Config, n: int, kind: str = "beat", **extra: Any) -> list[int]:
    """Write n routine reports straight into the outbox (a line that was down)."""
    with Outbox.of(cfg) as ob:
        return ob.add([{"v": 1, "kind": kind, "point_id": cfg.point.id, "box_time": clock.now(), "health": {}, **extra} for _ in range(n)])


def test_the_newest_report_goes_first_then_the_backlog_oldest_first_in_batches(box: Config, centre: FakeCentre) -> None:
    backlog = fill(box, 12)
    result = heartbeat_job(box, None, FakeHardware(), sleep=lambda s: None)
    newest = result["written"]
    assert centre.requests[0] == newest
    assert centre.requests[1:] == [backlog[0:5], backlog[5:10], backlog[10:12]]
    assert result["outbox"] == 0
    assert status(box)["outbox"] == 0 and status(box)["last_error"] is None


def test_a_report_stays_in_the_outbox_when_the_centre_answers_500(box: Config, centre: FakeCentre) -> None:
    centre.script = ["500"]
    result = heartbeat_job(box, None, FakeHardware(), sleep=lambda s: None)
    assert result["acked"] == 0 and result["outbox"] == len(result["written"])
    st = status(box)
    assert "500" in st["last_error"] and st["failures"] == 1
    assert not centre.stored


def test_a_report_stays_in_the_outbox_when_the_centre_does_not_answer_in_time(box: Config, centre: FakeCentre, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_mod, "READ_TIMEOUT_S", 0.3)
    centre.script = ["slow"]
    result = heartbeat_job(box, None, FakeHardware(), sleep=lambda s: None)
    assert result["outbox"] == len(result["written"])
    assert "Timeout" in status(box)["last_error"]


def test_a_connection_cut_mid_request_keeps_the_reports_and_the_centre_stores_them_once(box: Config, centre: FakeCentre) -> None:
    with clock.use(FrozenClock(time.time())) as fc:
        fill(box, 7)
        centre.script = ["drop"]
        first = heartbeat_job(box, None, FakeHardware(), sleep=lambda s: None)
        assert first["acked"] == 0 and first["outbox"] == 7 + len(first["written"])
        fc.advance(box.centre.backoff_max_s + 1)  # past any backoff
        heartbeat_job(box, None, FakeHardware(), sleep=lambda s: None)
    assert status(box)["outbox"] == 0
    seqs = [seq for (_, seq) in centre.stored]
    assert len(seqs) == len(set(seqs)) == len(centre.order)
    assert sorted(seqs) == list(range(1, max(seqs) + 1))


def test_nothing_is_sent_again_before_the_backoff_has_passed(box: Config, centre: FakeCentre) -> None:
    with clock.use(FrozenClock(time.time())) as fc:
        centre.script = ["500"]
        heartbeat_job(box, None, FakeHardware(), sleep=lambda s: None)
        asked = len(centre.requests)
        heartbeat_job(box, None, FakeHardware(), sleep=lambda s: None)  # at once: still waiting
        assert len(centre.requests) == asked
        assert status(box)["outbox"] == 3  # the boot event and two beats, all kept
        fc.advance(box.centre.heartbeat_interval_s)
        heartbeat_job(box, None, FakeHardware(), sleep=lambda s: None)
    assert status(box)["outbox"] == 0


def test_backoff_grows_with_each_failure_up_to_the_cap_and_is_jittered(cfg: Config) -> None:
    waits = [backoff_s(n, cfg, rand=lambda: 1.0) for n in range(1, 10)]
    assert waits == sorted(waits) and waits[0] == cfg.centre.heartbeat_interval_s and waits[-1] == cfg.centre.backoff_max_s
    assert backoff_s(3, cfg, rand=lambda: 0.0) < backoff_s(3, cfg, rand=lambda: 1.0)


def test_a_long_retry_after_ends_the_round_and_is_honoured(box: Config, centre: FakeCentre) -> None:
    with clock.use(FrozenClock(time.time())) as fc:
        fill(box, 3)
        centre.script = [("busy", 900)]
        heartbeat_job(box, None, FakeHardware(), sleep=lambda s: None)
        assert not centre.stored
        fc.advance(600)
        asked = len(centre.requests)
        heartbeat_job(box, None, FakeHardware(), sleep=lambda s: None)
        assert len(centre.requests) == asked  # the centre asked for 900 s of quiet
        fc.advance(301)
        heartbeat_job(box, None, FakeHardware(), sleep=lambda s: None)
    assert status(box)["outbox"] == 0


def test_a_short_retry_after_is_waited_out_within_the_round(box: Config, centre: FakeCentre) -> None:
    fill(box, 3)
    centre.script = ["ok", ("busy", 2)]
    slept: list[float] = []
    result = heartbeat_job(box, None, FakeHardware(), sleep=slept.append)
    assert 2.0 in slept and result["outbox"] == 0


def test_retry_after_is_read_as_seconds_or_as_an_http_date() -> None:
    assert retry_after_seconds("120") == 120.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412480 - 60) == 60.0
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None


def test_the_box_corrects_its_clock_offset_when_the_centre_refuses_its_timestamp(box: Config) -> None:
    strict = FakeCentre(check_clock=True)
    try:
        cfg = box.replace(centre__url=strict.url)
        with clock.use(FrozenClock(time.time() - 3 * 86400)):  # a Pi without a real-time clock
            first = heartbeat_job(cfg, None, FakeHardware(), sleep=lambda s: None)
            assert first["outbox"] == 0 and len(strict.refused) == 1
            heartbeat_job(cfg, None, FakeHardware(), sleep=lambda s: None)
        assert len(strict.refused) == 1  # the learnt offset signs right the first time
        assert abs(status(cfg)["centre_offset_s"] - 3 * 86400) < 60
    finally:
        strict.close()


def test_a_random_pause_follows_reconnecting_before_the_backlog(box: Config, centre: FakeCentre) -> None:
    cfg = box.replace(centre__reconnect_delay_s=30)
    fill(cfg, 6)
    slept: list[float] = []
    heartbeat_job(cfg, None, FakeHardware(), sleep=slept.append, rand=lambda: 0.5)
    assert slept[0] == 15.0
    assert centre.requests[0] != [1, 2, 3, 4, 5]  # the newest went before the pause


def test_a_batch_the_centre_acknowledges_none_of_is_not_resent_in_a_loop(box: Config, centre: FakeCentre) -> None:
    fill(box, 3)
    centre.script = ["ok", "ack-none"]
    result = heartbeat_job(box, None, FakeHardware(), sleep=lambda s: None)
    assert len(centre.requests) == 2 and result["outbox"] == 3


def test_a_wrong_secret_is_refused_and_nothing_is_deleted(box: Config, centre: FakeCentre) -> None:
    cfg = box.replace(centre__secret="not-the-secret")
    result = heartbeat_job(cfg, None, FakeHardware(), sleep=lambda s: None)
    assert result["outbox"] == len(result["written"]) and not centre.stored
    assert "401" in status(cfg)["last_error"]


def test_drain_reports_its_progress(box: Config, centre: FakeCentre) -> None:
    fill(box, 11)
    seen: list[tuple[int, int]] = []
    with Outbox.of(box) as ob:
        drain(box, ob, sleep=lambda s: None, progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (11, 11)


def test_a_report_the_centre_refuses_as_malformed_is_set_aside_and_the_rest_go_through(box: Config, centre: FakeCentre) -> None:
    before = fill(box, 3)
    (bad,) = fill(box, 1, poison=True)
    after = fill(box, 3)
    result = heartbeat_job(box, None, FakeHardware(), sleep=lambda s: None)
    stored = {seq for (_, seq) in centre.stored}
    assert set(before + after + result["written"]) <= stored and bad not in stored
    st = status(box)
    assert st["outbox"] == 1 and st["held"] == 1 and "malformed" in st["last_error"]
    asked = len(centre.requests)
    heartbeat_job(box, None, FakeHardware(), sleep=lambda s: None)
    assert all(bad not in r for r in centre.requests[asked:])  # not sent again by the same software


def test_when_the_centre_refuses_every_report_none_is_set_aside(box: Config, centre: FakeCentre) -> None:
    fill(box, 4)
    centre.refuse_all = True
    heartbeat_job(box, None, FakeHardware(), sleep=lambda s: None)
    st = status(box)
    assert st["held"] == 0 and st["outbox"] == 6 and st["failures"] == 1


def test_a_stop_request_ends_the_pause_after_reconnecting_at_once(box: Config, centre: FakeCentre) -> None:
    cfg = box.replace(centre__reconnect_delay_s=600)
    fill(cfg, 4)
    stop = threading.Event()
    stop.set()
    began = time.monotonic()
    result = heartbeat_job(cfg, None, FakeHardware(), rand=lambda: 1.0, stop=stop)
    assert time.monotonic() - began < 60 and result["stopped"] == "stop" and result["outbox"] == 4


@pytest.mark.parametrize("action", ["ack-forged", "ack-unsigned", "ack-replayed"])
def test_an_acknowledgement_the_box_cannot_verify_deletes_nothing(box: Config, centre: FakeCentre, action: str) -> None:
    seqs = fill(box, 3)
    centre.script = [action]
    with Outbox.of(box) as ob:
        rnd = drain(box, ob, sleep=lambda s: None)
        assert ob.depth() == 3 and [r["seq"] for r in ob.oldest()] == seqs
        assert "verify" in ob.state("last_error")
    assert rnd.acked == 0
    with Outbox.of(box) as ob:  # the next round, with the centre's own answer, sends them again and deletes them
        ob.set_state(next_attempt=None)
        drain(box, ob, sleep=lambda s: None)
        assert ob.depth() == 0 and sorted(s for _p, s in centre.stored) == seqs
