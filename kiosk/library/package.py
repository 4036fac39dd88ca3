"""Kiosk packages: BagIt bags with kiosk.json and a signature; building and checking them.

`check_package` runs the box's checks on an opened bag, cheapest first (signature,
tag hashes, record, completeness) and reads no payload, so the library's ingest can
hash the payload while it copies. `verify_package` adds the payload hashes.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import logging
import os
import posixpath
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from kiosk import __version__, clock
from kiosk.errors import KioskError, PackageRejected
from kiosk.library.bag import OS_CRUFT, Bag, Progress, walk_folder, encode_path, hash_stream, open_bag, verify_payload
from kiosk.library.record import COMPONENTS, MAX_RECORD_BYTES, Record, parse_record
from kiosk.library.signing import SIGNATURE_FILE, SIGNED_FILE, load_private_key, signed_by, verify_signature

log = logging.getLogger(__name__)

RECORD_FILE = "kiosk.json"


@dataclass(frozen=True)
class OwnKey:
    """A point's own key, trusted only for ids that start with `prefix` (local.<point id>.)."""

    prefix: str
    key: Ed25519PublicKey


def _signers(signed: bytes, signature_line: bytes, trust_dir: Path | None, software_trust_dir: Path | None,
             own: OwnKey | None) -> dict[str, str]:
    """Who verifies the signature: {"content" or "own" or "software": the key's name}; untrusted when nobody."""
    found: dict[str, str] = {}
    first: PackageRejected | None = None
    for kind, folder in (("content", trust_dir), ("software", software_trust_dir)):
        if folder is None and kind == "software":
            continue
        try:
            found[kind] = verify_signature(signed, signature_line, folder)
        except PackageRejected as e:
            if e.reason != "untrusted":
                raise  # a malformed signature is malformed whichever folder is asked
            first = first or e
    if "content" not in found and own is not None and signed_by(own.key, signed, signature_line):
        found["own"] = "the point's own key"
    if not found:
        assert first is not None
        raise first
    return found


def check_package(bag: Bag, trust_dir: Path | None, check_expiry: bool = True, own: OwnKey | None = None,
                  software_trust_dir: Path | None = None) -> Record:
    """The box's checks on an opened bag, payload hashes excepted; the record, or PackageRejected.

    `own`: a point's key, which signs that point's local packages and nothing else.
    Content is trusted through `trust_dir`, software only through `software_trust_dir`:
    a county's content publisher cannot push code to the fleet."""
    if not bag.has_tag(SIGNATURE_FILE):
        raise PackageRejected("bad_signature", f"{SIGNATURE_FILE} is missing")
    if not bag.has_tag(SIGNED_FILE):
        raise PackageRejected("bad_signature", f"{SIGNED_FILE}, which the signature covers, is missing")
    if bag.tags[SIGNATURE_FILE] > 4096:
        raise PackageRejected("bad_signature", f"{SIGNATURE_FILE} is far too large for a signature")
    signed = bag.read_tag(SIGNED_FILE)
    signature_line = bag.read_tag(SIGNATURE_FILE, 4096)
    signers = _signers(signed, signature_line, trust_dir, software_trust_dir, own)
    # Every tag file but the signature and the tag manifests must be signed through
    # tagmanifest-sha256.txt, or a tampered manifest-sha256.txt would pass.
    for name in sorted(bag.tags):
        if name == SIGNATURE_FILE or (name.startswith("tagmanifest-") and name.endswith(".txt")):
            continue
        if OS_CRUFT.fullmatch(posixpath.basename(name)) and name not in bag.tag_manifest:
            bag.warnings.append(f"{name} (a system file) is ignored")
            continue
        if "sha256" not in bag.tag_manifest.get(name, {}):
            reason = "bad_record" if name == RECORD_FILE else "bad_bag"
            raise PackageRejected(reason, f"{name} is not listed in {SIGNED_FILE}")
    if not bag.has_tag(RECORD_FILE):
        raise PackageRejected("bad_record", f"{RECORD_FILE} is missing")
    if "sha256" not in bag.algorithms:
        raise PackageRejected("bad_bag", "manifest-sha256.txt is missing")
    bag.check_tags()
    if bag.tags[RECORD_FILE] > MAX_RECORD_BYTES:
        raise PackageRejected("bad_record", f"{RECORD_FILE} is larger than {MAX_RECORD_BYTES} bytes")
    record = parse_record(bag.read_tag(RECORD_FILE, MAX_RECORD_BYTES))
    if record.is_software:
        if "software" not in signers:
            raise PackageRejected("untrusted", "a software package must be signed with a software key; a content key does not count")
        key_name = signers["software"]
    elif "content" in signers:
        key_name = signers["content"]
    elif "own" in signers:
        if not record.id.startswith(own.prefix):  # type: ignore[union-attr]
            raise PackageRejected("untrusted", f"the point's own key signs only its local packages ({own.prefix}*), not {record.id}")  # type: ignore[union-attr]
        key_name = signers["own"]
    else:
        raise PackageRejected("untrusted", "no trusted content publisher key verifies the signature")
    bag.check_complete()
    if record.software is not None:
        _check_software_payload(bag, record)
    for field in ("main", "poster", "narration"):
        rel = getattr(record, field)
        if rel is not None and f"data/{rel}" not in bag.payload:
            raise PackageRejected("bad_record", f"kiosk.json: {field} data/{rel} is not in the payload")
    if check_expiry and record.expired(clock.now()):
        raise PackageRejected("expired", f"{record.id} expired on {record.expires}")
    log.debug("event=package_checked id=%s version=%s key=%s", record.id, record.version, key_name)
    return record


def _check_software_payload(bag: Bag, record: Record) -> None:
    """An app release is wheels under data/wheels/, an OS release a RAUC bundle under data/os/; nothing else."""
    assert record.software is not None
    folder = "data/" + COMPONENTS[record.software.component] + "/"
    suffix = ".whl" if record.software.component == "app" else ".raucb"
    stray = sorted(p for p in bag.payload if not p.startswith(folder))
    if stray:
        raise PackageRejected("bad_record", f"{stray[0]} is outside {folder}, where a {record.software.component} release lives")
    if not any(p.endswith(suffix) for p in bag.payload):
        raise PackageRejected("bad_record", f"no {suffix} file under {folder}")


def verify_package(
    path: Path, trust_dir: Path | None, progress: Progress | None = None, warnings: list[str] | None = None,
    max_bytes: int | None = None, own: OwnKey | None = None, software_trust_dir: Path | None = None,
) -> Record:
    """Everything the box checks before accepting a package, writing nothing; the record, or PackageRejected."""
    with open_bag(Path(path)) as bag:
        record = check_package(bag, Path(trust_dir) if trust_dir is not None else None, own=own,
                               software_trust_dir=software_trust_dir)
        if max_bytes is not None:
            sizes = bag.present()
            size = sum(sizes[p] for p in bag.payload)
            if size > max_bytes:
                raise PackageRejected("too_large", f"{size} bytes is over the box's limit of {max_bytes} bytes")
        verify_payload(bag, progress)
        if warnings is not None:
            warnings.extend(bag.warnings)
        return record


# --- building ---------------------------------------------------------------------


def _payload_files(src: Path) -> tuple[Path, dict[str, int]]:
    """The payload folder and its files (path relative to it -> size)."""
    files, _ = walk_folder(src, "")
    # system litter (.DS_Store, Thumbs.db) is never content
    files = {n: size for n, size in files.items() if not OS_CRUFT.fullmatch(posixpath.basename(n))}
    if "data" in {n.split("/", 1)[0] for n in files} or (src / "data").is_dir():
        stray = sorted(n for n in files if not n.startswith("data/") and n != RECORD_FILE)
        if stray:
            raise KioskError(f"{stray[0]} is outside data/; put every payload file in data/")
        return src / "data", {n[5:]: s for n, s in files.items() if n.startswith("data/")}
    return src, {n: s for n, s in files.items() if n != RECORD_FILE}


def _tarinfo(name: str, size: int | None) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mtime = int(clock.now())
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if size is None:
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
    else:
        info.size = size
        info.mode = 0o644
    return info


def build_package(src: Path, key: Path, out: Path, progress: Progress | None = None) -> Path:
    """Write a signed BagIt 1.0 package from SRC (kiosk.json plus payload) to OUT (a folder, or a .tar)."""
    src, out = Path(src), Path(out)
    if out.exists() or out.is_symlink():
        raise KioskError(f"{out} already exists; not overwriting it")
    if not (src / RECORD_FILE).is_file():
        raise KioskError(f"{src} has no {RECORD_FILE}")
    private_key = load_private_key(key)
    record_bytes = (src / RECORD_FILE).read_bytes()
    record = parse_record(record_bytes)
    payload_dir, files = _payload_files(src)
    for field in ("main", "poster", "narration"):
        rel = getattr(record, field)
        if rel is not None and rel not in files:
            raise KioskError(f"kiosk.json names {field} {rel!r}, which is not in the payload")

    total, done = sum(files.values()), 0
    digests: dict[str, str] = {}
    for rel in sorted(files):
        with open(payload_dir / rel, "rb") as f:
            def step(n: int, rel: str = rel) -> None:
                nonlocal done
                done += n
                if progress:
                    progress(done, total, rel)
            digests[rel] = hash_stream(f, ["sha256"], step)["sha256"]

    today = dt.datetime.fromtimestamp(clock.now()).date().isoformat()
    tag_files: dict[str, bytes] = {
        "bagit.txt": b"BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n",
        "bag-info.txt": (
            f"Bag-Software-Agent: kiosk {__version__}\nBagging-Date: {today}\n"
            f"Payload-Oxum: {total}.{len(files)}\n"
        ).encode("utf-8"),
        "manifest-sha256.txt": "".join(
            f"{digests[rel]}  {encode_path('data/' + rel)}\n" for rel in sorted(files)
        ).encode("utf-8"),
        RECORD_FILE: record_bytes,
    }
    tag_manifest = "".join(
        f"{hashlib.sha256(data).hexdigest()}  {name}\n" for name, data in tag_files.items()
    ).encode("utf-8")
    tag_files[SIGNED_FILE] = tag_manifest
    tag_files[SIGNATURE_FILE] = base64.b64encode(private_key.sign(tag_manifest)) + b"\n"

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        if out.suffix == ".tar":
            part = tmp / out.name
            top = out.name[: -len(".tar")] or "package"
            with tarfile.open(part, "w", format=tarfile.PAX_FORMAT) as tar:
                tar.addfile(_tarinfo(top, None))
                for name, data in tag_files.items():
                    tar.addfile(_tarinfo(f"{top}/{name}", len(data)), _BytesReader(data))
                tar.addfile(_tarinfo(f"{top}/data", None))
                dirs: set[str] = set()
                for rel in sorted(files):
                    parts = rel.split("/")[:-1]
                    for i in range(1, len(parts) + 1):
                        d = "/".join(parts[:i])
                        if d not in dirs:
                            dirs.add(d)
                            tar.addfile(_tarinfo(f"{top}/data/{d}", None))
                    with open(payload_dir / rel, "rb") as f:
                        tar.addfile(_tarinfo(f"{top}/data/{rel}", files[rel]), f)
            os.replace(part, out)
        else:
            bag_dir = tmp / "bag"
            (bag_dir / "data").mkdir(parents=True)
            for rel in sorted(files):
                dest = bag_dir / "data" / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(payload_dir / rel, dest)
            for name, data in tag_files.items():
                (bag_dir / name).write_bytes(data)
            os.rename(bag_dir, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("event=package_built id=%s version=%s out=%s files=%d bytes=%d", record.id, record.version, out, len(files), total)
    return out


class _BytesReader:
    """Just enough of a file for tarfile.addfile."""

    def __init__(self, data: bytes) -> None:
        self._data, self._pos = data, 0

    def read(self, n: int = -1) -> bytes:
        end = len(self._data) if n < 0 else self._pos + n
        chunk = self._data[self._pos:end]
        self._pos += len(chunk)
        return chunk


def sign_tag_manifest(bag_dir: Path, key: Path) -> Path:
    """Write signature.ed25519 for a bag folder's tagmanifest-sha256.txt (for bags made by other tools)."""
    data = (Path(bag_dir) / SIGNED_FILE).read_bytes()
    sig_path = Path(bag_dir) / SIGNATURE_FILE
    sig_path.write_bytes(base64.b64encode(load_private_key(key).sign(data)) + b"\n")
    return sig_path

