"""The centre shows each point's software version and update state, from its heartbeats."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.centre_helpers import centre_config, db_url, report  # noqa: F401  (db_url is a fixture)
from tests.test_centre_api import centre, login, post  # noqa: F401  (centre is a fixture)


def test_points_carry_the_software_version_and_update_state_of_their_last_report(centre, cfg_path, db_url):  # noqa: F811
    app, store = centre
    client = app.test_client()
    for pid, state in (("p1", "rolled_back"), ("p2", "current")):
        secret = store.enroll(pid)
        r = post(client, pid, secret, [report(pid, 1, software={"version": "9.0.2", "state": state})])
        assert r.status_code == 200, r.get_data(as_text=True)
    old = store.enroll("p3")  # a box from before updates: a plain version string
    assert post(client, "p3", old, [report("p3", 1)]).status_code == 200
    login(client)
    listed = {p["id"]: p for p in client.get("/api/v1/points").json["points"]}
    assert (listed["p1"]["software"], listed["p1"]["software_state"]) == ("9.0.2", "rolled_back")
    assert (listed["p3"]["software"], listed["p3"]["software_state"]) == ("0.1.0", "")
    page = client.get("/").get_data(as_text=True)
    assert 'data-software-state="rolled_back"' in page and "已退回旧版" in page
    assert "已退回旧版" in client.get("/points/p1").get_data(as_text=True)
    done = subprocess.run([sys.executable, "-m", "kiosk.cli", "centre", "points", "--json", "--config", str(cfg_path)],
                          capture_output=True, text=True, timeout=60, env={"KIOSK_CENTRE_DB": db_url, "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert {p["id"]: p["software"] for p in json.loads(done.stdout)}["p1"] == {"version": "9.0.2", "state": "rolled_back"}
