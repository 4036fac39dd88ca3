"""The point's own Ed25519 key: made on first start, kept in the data folder, signs local packages.

The box trusts it for its own local packages only (ids `local.<point id>.*`), so a
stolen or misused point key cannot pass for the centre's publisher. The public half
travels to the centre in the point's heartbeats (`point_key`, 32 raw bytes in
base64), over the HMAC-signed channel, so the centre knows which key each point's
uploads must carry.
"""

from __future__ import annotations

import logging
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives import serialization

from kiosk.config import Config
from kiosk.library.package import OwnKey
from kiosk.library.signing import generate_key, public_key_raw

log = logging.getLogger(__name__)

KEY_FILE = "point-key.pem"
LOCAL_PREFIX = "local."


def key_path(cfg: Config) -> Path:
    """Where the point's private key lives (its public half beside it, .pub)."""
    return cfg.data_dir / KEY_FILE


def local_prefix(point_id: str) -> str:
    """The id prefix of a point's local packages."""
    return f"{LOCAL_PREFIX}{point_id}."


def ensure_key(cfg: Config) -> Path:
    """The point's private key, made now when missing."""
    path = key_path(cfg)
    if not path.exists():
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
        generate_key(path)
        log.info("event=point_key_made path=%s", path)
    return path


def public_key(cfg: Config) -> Ed25519PublicKey | None:
    """The point's public key, or None before it is made (or when its file is unreadable)."""
    pub = key_path(cfg).with_name(KEY_FILE + ".pub")
    try:
        key = serialization.load_pem_public_key(pub.read_bytes())
    except (OSError, ValueError) as e:
        if not isinstance(e, FileNotFoundError):
            log.warning("event=point_key_unreadable path=%s error=%r", pub, e)
        return None
    return key if isinstance(key, Ed25519PublicKey) else None


def own_key(cfg: Config) -> OwnKey | None:
    """What ingest trusts the point's key for: its own local packages."""
    key = public_key(cfg)
    return OwnKey(local_prefix(cfg.point.id), key) if key is not None else None


def public_key_text(cfg: Config) -> str | None:
    """The public key as reports carry it, or None before it is made."""
    key = public_key(cfg)
    return public_key_raw(key) if key is not None else None
