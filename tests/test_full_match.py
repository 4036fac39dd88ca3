"""Ids, names and headers match in full: a trailing newline, which `$` lets through, is refused."""

from __future__ import annotations

import pytest

from kiosk import wire
from kiosk.centre.store import Store
from kiosk.errors import KioskError
from kiosk.uplink import sync
from kiosk.wire import WireError


def test_a_point_id_with_a_trailing_newline_cannot_be_enrolled(tmp_path) -> None:
    store = Store(str(tmp_path / "centre.db"))
    try:
        assert store.enroll("p1")
        with pytest.raises(KioskError):
            store.enroll("p2\n")
    finally:
        store.close()


def test_an_authorization_header_with_a_trailing_newline_is_refused() -> None:
    good = wire.authorization("p1", "s" * 64, "POST", "/api/v1/heartbeats", 1000, b"{}")
    assert wire.parse_authorization(good)[0] == "p1"
    with pytest.raises(WireError):
        wire.parse_authorization(good + "\n")


def test_a_package_index_entry_whose_id_ends_in_a_newline_is_refused() -> None:
    entry = {"id": "pig", "version": 1, "size": 10, "tagmanifest_sha256": "a" * 64, "path": "/api/v1/packages/pig-1.tar"}
    assert sync._entry(entry).id == "pig"
    for field, value in (("id", "pig\n"), ("tagmanifest_sha256", "a" * 64 + "\n")):
        with pytest.raises(ValueError):
            sync._entry({**entry, field: value})

