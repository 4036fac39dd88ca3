"""Test factories for content packages: signed bags, broken in any way a test needs.

Written apart from kiosk.library.package on purpose, so the builder and the checks
are each tested against an independent maker.

    bag = make_bag(tmp_path)                                   # a good signed folder bag
    bag = make_bag(tmp_path, files={"a.mp4": b"..."}, record={"main": "a.mp4"}, tar=True)
    bag = make_bag(tmp_path, record={"title": DROP})           # kiosk.json without a title
    bag = make_bag(tmp_path, mutate=lambda d: (d / "data/video.mp4").write_bytes(b"x"))
    trust = trust_dir(tmp_path)                                # the folder holding the public key
"""

from __future__ import annotations

import base64
import hashlib
import io
import shutil
import json
import tarfile
from pathlib import Path
from typing import Any, Callable, Iterable

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

DROP = object()  # record={"field": DROP} leaves the field out of kiosk.json

DEFAULT_FILES: dict[str, bytes] = {"video.mp4": b"\x00\x00\x00\x18ftypmp42 not really a video\n" * 10}
DEFAULT_RECORD: dict[str, Any] = {
    "id": "pig-farming",
    "version": 1,
    "title": "科学养猪",
    "description": "冬季猪舍保暖与防疫",
    "language": "zh-CN",
    "tags": ["养猪", "冬季"],
    "category": "agriculture",
    "main": "video.mp4",
    "priority": 5,
    "expires": None,
}


def make_key(path: Path) -> Path:
    """Write an Ed25519 private key (PKCS8 PEM, as `openssl genpkey -algorithm ed25519`) and PATH.pub."""
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    path.with_name(path.name + ".pub").write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return path


def default_key(tmp: Path) -> Path:
    """The publisher key every make_bag under `tmp` signs with by default (made once)."""
    path = tmp / "keys" / "publisher.pem"
    if not path.exists():
        make_key(path)
    trust = tmp / "trust"
    trust.mkdir(exist_ok=True)
    (trust / "publisher.pub").write_bytes(path.with_name(path.name + ".pub").read_bytes())
    return path


def trust_dir(tmp: Path) -> Path:
    """The trust folder holding the default key's public half."""
    default_key(tmp)
    return tmp / "trust"


def trust_key(key: Path, trust: Path) -> None:
    """Copy a private key's public half into a trust folder."""
    trust.mkdir(parents=True, exist_ok=True)
    (trust / (key.stem + ".pub")).write_bytes(key.with_name(key.name + ".pub").read_bytes())


def sign(key: Path, data: bytes) -> bytes:
    """signature.ed25519's content for `data`."""
    private = serialization.load_pem_private_key(key.read_bytes(), password=None)
    assert isinstance(private, Ed25519PrivateKey)
    return base64.b64encode(private.sign(data)) + b"\n"


def record_bytes(record: dict[str, Any] | None = None) -> bytes:
    """kiosk.json bytes: DEFAULT_RECORD updated by `record` (DROP removes a field)."""
    merged = dict(DEFAULT_RECORD)
    for k, v in (record or {}).items():
        if v is DROP:
            merged.pop(k, None)
        else:
            merged[k] = v
    return json.dumps(merged, ensure_ascii=False, indent=1).encode("utf-8")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_bag(
    bag: Path,
    files: dict[str, bytes],
    kiosk_json: bytes | None,
    key: Path | None,
    oxum: bool = True,
    algorithms: Iterable[str] = ("sha256",),
) -> Path:
    """Write a BagIt 1.0 folder: payload, manifests, bag-info, kiosk.json, tag manifest, signature."""
    (bag / "data").mkdir(parents=True)
    for rel, data in files.items():
        p = bag / "data" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    tags: dict[str, bytes] = {"bagit.txt": b"BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n"}
    info = "Bag-Software-Agent: tests\nBagging-Date: 2026-01-01\n"
    if oxum:
        info += f"Payload-Oxum: {sum(len(d) for d in files.values())}.{len(files)}\n"
    tags["bag-info.txt"] = info.encode()
    for alg in algorithms:
        tags[f"manifest-{alg}.txt"] = "".join(
            f"{hashlib.new(alg, d).hexdigest()}  data/{rel}\n" for rel, d in sorted(files.items())
        ).encode("utf-8")
    if kiosk_json is not None:
        tags["kiosk.json"] = kiosk_json
    for name, data in tags.items():
        (bag / name).write_bytes(data)
    tagmanifest = "".join(f"{_sha(d)}  {n}\n" for n, d in tags.items()).encode()
    (bag / "tagmanifest-sha256.txt").write_bytes(tagmanifest)
    if key is not None:
        (bag / "signature.ed25519").write_bytes(sign(key, tagmanifest))
    return bag


def resign(bag: Path, key: Path, tags: Iterable[str] | None = None) -> None:
    """Rewrite tagmanifest-sha256.txt over the given (default: the usual) tag files and sign it again."""
    names = list(tags) if tags is not None else [
        n for n in ("bagit.txt", "bag-info.txt", "manifest-sha256.txt", "kiosk.json") if (bag / n).exists()
    ]
    tagmanifest = "".join(f"{_sha((bag / n).read_bytes())}  {n}\n" for n in names).encode()
    (bag / "tagmanifest-sha256.txt").write_bytes(tagmanifest)
    (bag / "signature.ed25519").write_bytes(sign(key, tagmanifest))


def tar_folder(folder: Path, out: Path, top: str | None = None, extra: Iterable[tuple[tarfile.TarInfo, bytes | None]] = ()) -> Path:
    """Tar a folder as one top-level folder (`top`, default its name; "" puts the bag at the root), plus raw members."""
    top = folder.name if top is None else top
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        for p in sorted([folder, *folder.rglob("*")]):
            rel = p.relative_to(folder).as_posix()
            arc = "/".join(x for x in (top, "" if rel == "." else rel) if x)
            if not arc:
                continue
            tar.add(p, arcname=arc, recursive=False)
        for info, data in extra:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return out


def tar_member(name: str, data: bytes | None = b"", type_: bytes = tarfile.REGTYPE, linkname: str = "") -> tuple[tarfile.TarInfo, bytes | None]:
    """A raw tar member for tar_folder(extra=...), e.g. a symlink or '../escape'."""
    info = tarfile.TarInfo(name)
    info.type = type_
    info.linkname = linkname
    info.mode = 0o644
    if type_ == tarfile.REGTYPE and data is not None:
        info.size = len(data)
    else:
        data = None
    return info, data


def make_bag(
    tmp: Path,
    files: dict[str, bytes] | None = None,
    record: dict[str, Any] | None = None,
    key: Path | None = None,
    tar: bool = False,
    mutate: Callable[[Path], Any] | None = None,
    *,
    name: str | None = None,
    kiosk_json: bytes | None = None,
    sign_it: bool = True,
    oxum: bool = True,
    algorithms: Iterable[str] = ("sha256",),
    tar_extra: Iterable[tuple[tarfile.TarInfo, bytes | None]] = (),
) -> Path:
    """A signed package under `tmp` (folder, or .tar with tar=True); `mutate(folder)` runs after signing."""
    files = DEFAULT_FILES if files is None else files
    key = default_key(tmp) if key is None else key
    raw = kiosk_json if kiosk_json is not None else record_bytes(record)
    base = tmp / "bags"
    base.mkdir(parents=True, exist_ok=True)
    if name is None:
        n = 1
        while (base / f"bag{n}").exists() or (base / f"bag{n}.tar").exists():
            n += 1
        name = f"bag{n}"
    folder = write_bag(base / name, files, raw, key if sign_it else None, oxum=oxum, algorithms=algorithms)
    if mutate is not None:
        mutate(folder)
    if not tar:
        return folder
    out = tar_folder(folder, base / f"{name}.tar", extra=tar_extra)
    shutil.rmtree(folder)
    return out
