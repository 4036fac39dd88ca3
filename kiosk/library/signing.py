"""Ed25519 keys and signatures over a package's tagmanifest-sha256.txt.

Reasons, as the box reports them:
- bad_signature: signature.ed25519 is missing, is not base64, or does not decode to
  exactly 64 bytes;
- untrusted: the signature is well formed but no key in the trust folder verifies it
  (signed by a key this box does not trust, or altered after signing), or the trust
  folder holds no key at all.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import threading
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from kiosk.errors import KioskError, PackageRejected

log = logging.getLogger(__name__)

SIGNATURE_FILE = "signature.ed25519"
SIGNED_FILE = "tagmanifest-sha256.txt"
MAX_KEY_BYTES = 16 * 1024

_cache: dict[str, tuple[object, list[tuple[str, Ed25519PublicKey]]]] = {}
_lock = threading.Lock()


def generate_key(out: Path) -> Path:
    """Write a new private key at OUT (PEM PKCS8, mode 0600) and its public key at OUT.pub; return OUT.pub."""
    out = Path(out)
    pub = out.with_name(out.name + ".pub")
    for p in (out, pub):
        if p.exists() or p.is_symlink():
            raise KioskError(f"{p} already exists; not overwriting it")
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(private_pem)
    fd = os.open(pub, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(public_pem)
    log.info("event=key_generated private=%s public=%s", out, pub)
    return pub


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """An Ed25519 private key from a PEM file (ours or `openssl genpkey -algorithm ed25519`)."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise KioskError(f"cannot read the key {path}: {e.strerror}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as e:
        raise KioskError(f"{path} is not an unencrypted PEM private key: {e}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KioskError(f"{path} is not an Ed25519 key")
    return key


def sign_bytes(private_key_pem_path: Path, data: bytes) -> str:
    """The base64 of the Ed25519 signature over `data` (one line, no newline)."""
    key = load_private_key(private_key_pem_path)
    return base64.b64encode(key.sign(data)).decode("ascii")


def parse_signature(signature_line: bytes) -> bytes:
    """The 64 signature bytes from signature.ed25519's one line; bad_signature otherwise."""
    # One line is the format; the line breaks `base64` and `openssl base64` put into
    # longer output are tolerated, since they change nothing in the signature.
    text = b"".join(signature_line.split())
    if not text:
        raise PackageRejected("bad_signature", f"{SIGNATURE_FILE} is empty")
    try:
        sig = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise PackageRejected("bad_signature", f"{SIGNATURE_FILE} is not base64") from None
    if len(sig) != 64:
        raise PackageRejected("bad_signature", f"{SIGNATURE_FILE} holds {len(sig)} bytes, not 64")
    return sig


def _stamp(trust_dir: Path) -> object:
    # The folder's mtime catches added and removed keys; each file's mtime and size
    # catch a key rewritten in place.
    st = os.stat(trust_dir)
    files = []
    with os.scandir(trust_dir) as it:
        for e in it:
            try:
                s = e.stat()
            except OSError:
                continue
            files.append((e.name, s.st_mtime_ns, s.st_size))
    return (st.st_mtime_ns, tuple(sorted(files)))


def trusted_keys(trust_dir: Path) -> list[tuple[str, Ed25519PublicKey]]:
    """Every Ed25519 public key (PEM) in the trust folder, with its file name; cached until the folder changes."""
    trust_dir = Path(trust_dir)
    try:
        stamp = _stamp(trust_dir)
    except FileNotFoundError:
        return []
    key = str(trust_dir.resolve())
    with _lock:
        hit = _cache.get(key)
        if hit and hit[0] == stamp:
            return hit[1]
    keys: list[tuple[str, Ed25519PublicKey]] = []
    for p in sorted(trust_dir.iterdir()):
        if not p.is_file() or p.name.startswith("."):
            continue
        try:
            data = p.read_bytes()[: MAX_KEY_BYTES + 1]
            if len(data) > MAX_KEY_BYTES or b"-----BEGIN PUBLIC KEY-----" not in data:
                continue
            pk = serialization.load_pem_public_key(data)
        except (OSError, ValueError, TypeError) as e:
            log.warning("event=trust_key_unreadable file=%s error=%r", p.name, str(e))
            continue
        if isinstance(pk, Ed25519PublicKey):
            keys.append((p.name, pk))
        else:
            log.warning("event=trust_key_not_ed25519 file=%s", p.name)
    with _lock:
        _cache[key] = (stamp, keys)
    return keys


def verify_signature(data: bytes, signature_line: bytes, trust_dir: Path | None) -> str:
    """The name of the trusted key file whose key signed `data`; bad_signature or untrusted otherwise.

    `trust_dir` None trusts no folder (the centre checks a point's package against that point's key alone)."""
    sig = parse_signature(signature_line)
    keys = trusted_keys(trust_dir) if trust_dir is not None else []
    if not keys:
        raise PackageRejected("untrusted", "the trust folder holds no publisher key")
    for name, pk in keys:
        try:
            pk.verify(sig, data)
        except InvalidSignature:
            continue
        return name
    raise PackageRejected("untrusted", "no trusted publisher key verifies the signature")


def signed_by(key: Ed25519PublicKey, data: bytes, signature_line: bytes) -> bool:
    """Whether `key` made the signature over `data` (a malformed signature is bad_signature)."""
    try:
        key.verify(parse_signature(signature_line), data)
    except InvalidSignature:
        return False
    return True


def public_key_raw(key: Ed25519PublicKey) -> str:
    """The base64 of the 32 raw bytes of a public key (how a point's key travels in its reports)."""
    return base64.b64encode(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)).decode("ascii")


def public_key_from_raw(text: str) -> Ed25519PublicKey:
    """A public key from `public_key_raw`'s text; KioskError when it is not one."""
    try:
        raw = base64.b64decode(text, validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except (binascii.Error, ValueError, TypeError):
        raise KioskError("not an Ed25519 public key") from None
