"""The one wrapper for the box's outbound heartbeat HTTP, and the order reports are sent in.

`CentreClient` signs and posts one gzip batch (requests.Session, keep-alive,
timeouts) and corrects the box's clock offset once when the centre refuses a
timestamp. `drain()` empties the outbox in one calm stream: the newest reports
first (the centre learns the box is back at once), then a random pause when the
line has just come back (a whole county reconnecting does not arrive at the same
second), then the backlog oldest first in batches of centre.batch_size, one
request at a time. A report leaves the outbox only when the centre's answer
lists its sequence number; a failure (5xx, timeout, a dropped connection) ends
the round and the next try waits with exponential backoff and jitter;
Retry-After is honoured.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import urlsplit

import requests

from kiosk import __version__, clock, wire
from kiosk.config import Config
from kiosk.errors import KioskError
from kiosk.uplink.outbox import Outbox

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 30.0
PAUSE_BETWEEN_BATCHES_S = 0.05  # one request at a time, with a breath between, is the calm stream
SHORT_RETRY_AFTER_S = 5.0  # a Retry-After this short is waited out within the round
MAX_RETRY_AFTER_S = 86400.0
UNVERIFIED_ACK = "unverified_ack"


class UplinkError(KioskError, ConnectionError):
    """The centre could not be reached, or the connection broke before an answer."""


@dataclass
class Answer:
    """What the centre said to one batch."""

    status: int
    acked: list[int] = field(default_factory=list)
    server_time: float | None = None
    retry_after: float | None = None
    error: str = ""
    sent_bytes: int = 0
    uploads: dict[str, Any] = field(default_factory=dict)  # the centre's word on our local content


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Seconds a Retry-After header asks for (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_S)
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None
    return min(max(0.0, when - (clock.now() if now is None else now)), MAX_RETRY_AFTER_S)


class CentreClient:
    """Posts signed gzip batches of reports to the county centre."""

    def __init__(self, cfg: Config, session: requests.Session | None = None, offset: float = 0.0) -> None:
        self.cfg = cfg
        self.base = cfg.centre.url.rstrip("/")
        self.prefix = urlsplit(self.base).path  # a centre behind a path prefix receives it in front of ours
        self.session = session or requests.Session()
        self.offset = offset  # centre's clock minus the box's, learnt from its answers

    def post(self, reports: list[dict[str, Any]]) -> Answer:
        """Send one batch; on a refused timestamp correct the offset and sign once more."""
        body = wire.encode_batch(reports)
        headers = {"Content-Type": wire.CONTENT_TYPE, "Content-Encoding": wire.CONTENT_ENCODING}
        r = self.signed("POST", wire.HEARTBEATS_PATH, body, headers)
        sig = r.request.headers["Authorization"].rsplit("sig=", 1)[1]  # the centre's acknowledgement is bound to it
        return _answer(r, len(body), self.cfg.centre.secret, sig)

    def signed(self, method: str, path: str, body: bytes, headers: dict[str, str] | None = None) -> requests.Response:
        """One request to the centre signed with the point's secret (path may carry a query, which is signed too);
        a timestamp refused as off is corrected and signed once more. UplinkError when the line fails."""
        url = self.base + path
        signed_path = self.prefix + path  # the path as the centre receives it
        for attempt in (1, 2):
            ts = int(clock.now() + self.offset)
            sent = {**(headers or {}), "Authorization": wire.authorization(self.cfg.point.id, self.cfg.centre.secret, method, signed_path, ts, body)}
            try:
                r = self.session.request(method, url, data=body, headers=sent, timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S))
            except requests.RequestException as e:
                raise UplinkError(f"{type(e).__name__}: {e}") from None
            data = _json(r)
            server_time = data.get("server_time")
            if isinstance(server_time, (int, float)) and not isinstance(server_time, bool):
                self.offset = float(server_time) - clock.now()
                if r.status_code == 401 and data.get("error") == "clock" and attempt == 1:
                    log.warning("event=uplink_clock_corrected offset_s=%.0f", self.offset)
                    continue
            return r
        return r

    def close(self) -> None:
        """Close the session's connections."""
        self.session.close()


def _json(r: requests.Response) -> dict[str, Any]:
    """The answer's JSON object, or {} when it is not one."""
    try:
        data = r.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _answer(r: requests.Response, sent: int, secret: str, request_sig: str) -> Answer:
    data = _json(r)
    server_time = data.get("server_time")
    raw = data.get("acked") if r.status_code == 200 else None
    acked = [int(s) for s in raw if isinstance(s, int) and not isinstance(s, bool)] if isinstance(raw, list) else []
    error = str(data.get("error") or ("" if r.ok else f"HTTP {r.status_code}"))
    uploads = data["uploads"] if r.status_code == 200 and isinstance(data.get("uploads"), dict) else {}
    if (acked or uploads) and not wire.check_ack(secret, request_sig, acked, data.get("ack_sig")):
        # Not the centre's word (or altered on the way): delete nothing, believe nothing, send again later.
        log.warning("event=uplink_ack_unverified acked=%d", len(acked))
        acked, uploads, error = [], {}, UNVERIFIED_ACK
    return Answer(
        status=r.status_code,
        acked=acked,
        server_time=float(server_time) if isinstance(server_time, (int, float)) and not isinstance(server_time, bool) else None,
        retry_after=retry_after_seconds(r.headers.get("Retry-After")),
        error=error,
        sent_bytes=sent,
        uploads=uploads,
    )


@dataclass
class Round:
    """What one round of sending did."""

    sent: int = 0
    acked: int = 0
    requests: int = 0
    bytes: int = 0
    stopped: str = ""  # why the round ended early: backoff, retry_after, error, budget, stop
    uploads: dict[str, Any] = field(default_factory=dict)  # decisions on local content the answers carried


def backoff_s(failures: int, cfg: Config, rand: Callable[[], float] = random.random) -> float:
    """The wait after `failures` failed rounds: exponential, capped, with full jitter."""
    ceiling = min(float(cfg.centre.backoff_max_s), cfg.centre.heartbeat_interval_s * 2.0 ** max(0, failures - 1))
    return ceiling * (0.5 + rand() / 2)


def drain(
    cfg: Config,
    outbox: Outbox,
    newest: list[int] | None = None,
    *,
    client: CentreClient | None = None,
    sleep: Callable[[float], None] = time.sleep,
    rand: Callable[[], float] = random.random,
    budget_s: float | None = None,
    stop: Any = None,
    progress: Callable[[int, int], None] | None = None,
) -> Round:
    """Send the newest reports, then the backlog oldest first, until empty, failure or budget."""
    rnd = Round()
    if stop is not None and sleep is time.sleep:
        sleep = stop.wait  # SIGTERM ends a pause at once instead of holding the box's shutdown
    now = clock.now()
    not_before = outbox.state("next_attempt")
    # A box clock that jumped back must not park the uplink for days: honour at most the cap.
    if not_before and now < not_before <= now + max(cfg.centre.backoff_max_s, MAX_RETRY_AFTER_S):
        rnd.stopped = "backoff"
        return rnd
    own_client = client is None
    client = client or CentreClient(cfg, offset=float(outbox.state("centre_offset_s", 0.0) or 0.0))
    budget_s = cfg.centre.heartbeat_interval_s * 0.8 if budget_s is None else budget_s
    started = clock.monotonic()
    was_down = int(outbox.state("failures", 0) or 0) > 0 or outbox.state("last_sent") is None
    total = outbox.depth()
    try:
        if newest:
            batch = outbox.get(newest)
            if batch and not _send(cfg, outbox, client, batch, rnd, sleep, started, budget_s):
                return rnd
        if was_down and outbox.depth() and cfg.centre.reconnect_delay_s > 0:
            delay = rand() * min(cfg.centre.reconnect_delay_s, budget_s / 2)  # the pause leaves time to send
            log.info("event=uplink_reconnected backlog=%d wait_s=%.1f", outbox.depth(), delay)
            sleep(delay)
        after = 0
        while True:
            if stop is not None and stop.is_set():
                rnd.stopped = "stop"
                break
            if clock.monotonic() - started > budget_s:
                rnd.stopped = "budget"
                break
            batch = outbox.oldest(after=after, limit=cfg.centre.batch_size, held=False)
            if not batch:
                break
            if not _send(cfg, outbox, client, batch, rnd, sleep, started, budget_s):
                break
            after = batch[-1]["seq"]
            if progress:
                progress(rnd.acked, total)
            sleep(PAUSE_BETWEEN_BATCHES_S)
    finally:
        outbox.set_state(centre_offset_s=client.offset)
        if own_client:
            client.close()
    if rnd.sent:
        log.info("event=uplink_round sent=%d acked=%d bytes=%d left=%d stopped=%s", rnd.sent, rnd.acked, rnd.bytes, outbox.depth(), rnd.stopped or "-")
    return rnd


def _send(cfg: Config, outbox: Outbox, client: CentreClient, batch: list[dict[str, Any]], rnd: Round,
          sleep: Callable[[float], None], started: float, budget_s: float) -> bool:
    """Post one batch and act on the answer; False when the round must end."""
    while True:
        try:
            answer = client.post(batch)
        except UplinkError as e:
            _failed(cfg, outbox, rnd, str(e))
            return False
        rnd.sent += len(batch)
        rnd.bytes += answer.sent_bytes
        if answer.status == 200:
            if not _accepted(outbox, batch, answer, rnd):
                # Nothing stored: sending the same batch again would loop; try next round.
                why = ("the centre's acknowledgement did not verify with this point's secret (altered on the way?)"
                       if answer.error == UNVERIFIED_ACK else "the centre acknowledged none of the reports")
                _failed(cfg, outbox, rnd, why, count=False)
                return False
            return True
        if answer.retry_after is not None and answer.status in (429, 503):
            left = budget_s - (clock.monotonic() - started)
            if answer.retry_after <= min(SHORT_RETRY_AFTER_S, left):
                sleep(answer.retry_after)
                continue
            outbox.set_state(next_attempt=clock.now() + answer.retry_after, last_error=f"centre busy: retry after {answer.retry_after:.0f} s",
                             last_error_at=clock.now())
            rnd.stopped = "retry_after"
            log.info("event=uplink_retry_after wait_s=%.0f", answer.retry_after)
            return False
        if answer.status in (400, 413) and len(batch) > 1:
            return _isolate(cfg, outbox, client, batch, rnd)
        _failed(cfg, outbox, rnd, f"HTTP {answer.status}: {answer.error}")
        return False


def _accepted(outbox: Outbox, batch: list[dict[str, Any]], answer: Answer, rnd: Round) -> int:
    """Delete what the centre acknowledged of `batch`; return how many that was."""
    acked = sorted({r["seq"] for r in batch}.intersection(answer.acked))
    rnd.uploads.update(answer.uploads)
    outbox.acknowledge(acked)
    rnd.acked += len(acked)
    rnd.requests += sum(len(r.get("requests") or ()) for r in batch if r["seq"] in acked)
    state: dict[str, Any] = {"last_sent": clock.now(), "failures": 0, "next_attempt": None}
    if acked:
        state["last_acked_seq"] = max(acked)
        state["last_error"] = None
    outbox.set_state(**state)
    return len(acked)


def _isolate(cfg: Config, outbox: Outbox, client: CentreClient, batch: list[dict[str, Any]], rnd: Round) -> bool:
    """A batch refused as malformed: send its reports one by one and set aside those refused alone.

    Only when some of the batch is accepted is a refusal the report's fault; when all are
    refused the centre is at odds with every report, and the round ends without holding any.
    """
    refused: list[int] = []
    for report in batch:
        try:
            answer = client.post([report])
        except UplinkError as e:
            _failed(cfg, outbox, rnd, str(e))
            return False
        rnd.sent += 1
        rnd.bytes += answer.sent_bytes
        if answer.status in (400, 413):
            refused.append(report["seq"])
        elif answer.status != 200:
            _failed(cfg, outbox, rnd, f"HTTP {answer.status}: {answer.error}")
            return False
        else:
            _accepted(outbox, [report], answer, rnd)
    if len(refused) == len(batch):
        _failed(cfg, outbox, rnd, "the centre refuses every report as malformed")
        return False
    for seq in refused:
        outbox.hold(seq, __version__)
    outbox.set_state(last_error=f"the centre refused {len(refused)} report(s) as malformed; kept aside", last_error_at=clock.now())
    log.error("event=uplink_reports_held seqs=%s", ",".join(map(str, refused)))
    return True


def _failed(cfg: Config, outbox: Outbox, rnd: Round, error: str, count: bool = True) -> None:
    failures = int(outbox.state("failures", 0) or 0) + (1 if count else 0)
    wait = backoff_s(max(failures, 1), cfg)
    outbox.set_state(failures=failures, last_error=error, last_error_at=clock.now(), next_attempt=clock.now() + wait)
    rnd.stopped = "error"
    log.warning("event=uplink_failed error=%r failures=%d next_try_s=%.0f", error, failures, wait)
