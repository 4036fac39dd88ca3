"""Reading BagIt bags (RFC 8493, and 0.97 as the conformance suite has it), from a folder or a tar.

Hand-written rather than LoC's `bagit`: that package reads a bag only from a folder,
hashes every payload byte on validation (our ingest hashes while copying, once), and
disagrees with the conformance suite on a few bags. `bagit` stays the test oracle.

`open_bag` reads only names, sizes and the small tag files. Payload bytes are read
by `validate_bag` (and by the library's ingest), never here.
"""

from __future__ import annotations

import codecs
import hashlib
import logging
import os
import posixpath
import re
import stat
import tarfile
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable, Iterable

from kiosk.errors import PackageRejected, UnsafePath
from kiosk.library.tagfiles import (  # re-exported: callers know them from here
    MANIFEST_NAME, MAX_FILES, check_relpath, decode_path, encode_path, fold, parse_bag_info, parse_bagit_txt,
    parse_fetch, parse_manifest,
)

__all__ = [
    "Bag", "WriteError", "open_bag", "validate_bag", "verify_payload", "hash_stream", "walk_folder",
    "check_relpath", "decode_path", "encode_path", "OS_CRUFT",
]

log = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]

CHUNK = 1 << 20  # 1 MiB reads: hashlib (OpenSSL) runs at full speed, memory stays small
# Limits on what is read before the signature is checked, so unsigned junk is cheap to
# refuse: a tar of 400,000 members cost 228 MB and 15 s, 129 MB of manifests 560 MB.
MAX_TAG_BYTES = 8 << 20  # a tag file (manifest, bag-info) larger than this is not a sane bag
MAX_TAG_TOTAL = 16 << 20  # all tag files of one bag together (20,000 lines of 400 bytes is 8 MB)
MAX_HEADER_BYTES = 64 << 10  # a tar's long-name or pax header, which tarfile reads whole
# Files operating systems drop into folders; copying tools lose or add them, so their
# absence or presence is a warning, never a reason to refuse a bag.
OS_CRUFT = re.compile(r"\.DS_Store|Thumbs\.db|desktop\.ini|ehthumbs\.db|\._.*|\.Spotlight-V100|\.Trashes|\.fseventsd", re.I)


@dataclass
class Bag:
    """An opened bag: its tag files parsed, its payload listed, nothing hashed."""

    path: Path
    is_tar: bool
    version: tuple[int, int] = (1, 0)
    encoding: str = "UTF-8"
    bag_info: list[tuple[str, str]] = field(default_factory=list)
    oxum: tuple[int, int] | None = None
    payload: dict[str, dict[str, str]] = field(default_factory=dict)
    tag_manifest: dict[str, dict[str, str]] = field(default_factory=dict)
    tags: dict[str, int] = field(default_factory=dict)  # every tag file (not under data/) -> size
    warnings: list[str] = field(default_factory=list)
    fetch: list[str] = field(default_factory=list)
    manifest_algorithms: set[str] = field(default_factory=set)
    _tar: tarfile.TarFile | None = None
    _members: dict[str, tarfile.TarInfo] = field(default_factory=dict)
    _root: str = ""
    _cache: dict[str, bytes] = field(default_factory=dict)
    _undecoded: dict[str, str] = field(default_factory=dict)  # decoded name -> name as written
    _tag_bytes: int = 0  # bytes of tag files read so far (MAX_TAG_TOTAL)
    _counted: set[str] = field(default_factory=set)

    # --- the small files ----------------------------------------------------------
    @property
    def algorithms(self) -> list[str]:
        """Algorithms of the payload manifests that were read."""
        return sorted(self.manifest_algorithms)

    def has_tag(self, name: str) -> bool:
        """Whether a tag file of this name is present."""
        return name in self.tags

    def read_tag(self, name: str, limit: int = MAX_TAG_BYTES) -> bytes:
        """The bytes of a tag file (bagit.txt, kiosk.json, ...); bad_bag if missing or over `limit`."""
        if name in self._cache and len(self._cache[name]) <= limit:
            return self._cache[name]
        check_relpath(name, "tag file name")
        if name not in self.tags:
            raise PackageRejected("bad_bag", f"{name} is missing")
        if self.tags[name] > limit:
            raise PackageRejected("bad_bag", f"{name} is larger than {limit} bytes")
        try:
            with self._open(name) as f:
                data = f.read(limit + 1)
        except (tarfile.TarError, OSError) as e:
            raise PackageRejected("bad_bag", f"{name} cannot be read: {e}") from None
        if len(data) > limit:
            raise PackageRejected("bad_bag", f"{name} is larger than {limit} bytes")
        if name not in self._counted:
            self._counted.add(name)
            self._tag_bytes += len(data)
            if self._tag_bytes > MAX_TAG_TOTAL:
                raise PackageRejected("bad_bag", f"the tag files together are larger than {MAX_TAG_TOTAL} bytes")
        self._cache[name] = data
        return data

    def _text(self, name: str) -> str:
        raw = self.read_tag(name)
        enc = self.encoding
        if codecs.lookup(enc).name == "utf-8":
            enc = "utf-8-sig"  # a BOM is tolerated in tag files other than bagit.txt
        try:
            return raw.decode(enc)
        except UnicodeDecodeError as e:
            raise PackageRejected("bad_bag", f"{name} is not valid {self.encoding}: {e.reason}") from None

    # --- files -----------------------------------------------------------------
    def _open(self, rel: str) -> BinaryIO:
        if self._tar is not None:
            member = self._members.get(rel)
            if member is None or not member.isreg():
                raise PackageRejected("bad_bag", f"{rel} is missing")
            f = self._tar.extractfile(member)
            assert f is not None
            return f  # type: ignore[return-value]
        full = self.path / rel
        try:
            fd = os.open(full, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except FileNotFoundError:
            raise PackageRejected("bad_bag", f"{rel} is missing") from None
        except OSError as e:
            raise UnsafePath(f"{rel} cannot be opened safely: {e.strerror}") from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise UnsafePath(f"{rel} is not a regular file")
        return os.fdopen(fd, "rb")

    def open_payload(self, relpath: str) -> BinaryIO:
        """A streaming reader of one payload file ("data/..."); for a tar, the member's file object."""
        check_relpath(relpath, "payload path")
        if not relpath.startswith("data/"):
            raise UnsafePath(f"{relpath!r} is not under data/")
        return self._open(relpath)

    def copy_payload(self, relpath: str, dst: BinaryIO | None = None, progress: Callable[[int], None] | None = None) -> dict[str, str]:
        """Read one listed payload file once, writing it to `dst` if given, and check every digest; bad_hash otherwise."""
        digests = self.payload.get(relpath)
        if digests is None:
            raise PackageRejected("bad_bag", f"{relpath} is not in the manifest")
        try:
            with self.open_payload(relpath) as f:
                got = hash_stream(f, digests, progress, dst)
        except WriteError:
            raise  # the copy's disk failed (full?): the caller's problem, not the bag's
        except (tarfile.TarError, OSError) as e:
            raise PackageRejected("bad_bag", f"{relpath} cannot be read to its end: {e}") from None
        for alg, want in digests.items():
            if got[alg] != want:
                raise PackageRejected("bad_hash", f"{relpath} does not match manifest-{alg}.txt")
        return got

    def present(self) -> dict[str, int]:
        """Every payload file actually present ("data/..." -> size), found without reading contents."""
        if self._tar is not None:
            return {n: m.size for n, m in self._members.items() if n.startswith("data/") and m.isreg()}
        files, _ = walk_folder(self.path, "data")
        return files

    # --- checks ----------------------------------------------------------------
    def check_tags(self) -> None:
        """Hash the tag files against every tag manifest; bad_hash on a mismatch."""
        for rel, digests in self.tag_manifest.items():
            if rel not in self.tags:
                raise PackageRejected("bad_bag", f"{rel} is listed in a tag manifest but missing")
            try:
                with self._open(rel) as f:
                    got = hash_stream(f, digests)
            except (tarfile.TarError, OSError) as e:
                raise PackageRejected("bad_bag", f"{rel} cannot be read: {e}") from None
            for alg, want in digests.items():
                if got[alg] != want:
                    raise PackageRejected("bad_hash", f"{rel} does not match tagmanifest-{alg}.txt")

    def check_complete(self) -> None:
        """Every listed payload file is present, nothing else is in data/, and Payload-Oxum agrees.

        Names that differ only in case or Unicode normalisation and OS litter (Thumbs.db,
        .DS_Store) are warnings, as the conformance suite wants; such a missing duplicate
        is dropped from `payload` and a renormalised name is rekeyed to the name on disk.
        """
        present = self.present()
        missing = [p for p in self.payload if p not in present]
        extra = {p for p in present if p not in self.payload}
        tolerated = 0
        by_nfc = {unicodedata.normalize("NFC", p): p for p in extra}
        folded = {fold(k): k for k in self.payload if k in present}
        for m in missing:
            as_written = self._undecoded.get(m)
            if as_written in extra:
                self.payload[as_written] = self.payload.pop(m)
                extra.discard(as_written)
                self.warnings.append(f"{as_written} is listed without percent-encoding its '%'")
                continue
            on_disk = by_nfc.get(unicodedata.normalize("NFC", m))
            if on_disk is not None:
                self.payload[on_disk] = self.payload.pop(m)
                extra.discard(on_disk)
                self.warnings.append(f"{m} is stored under a differently normalised name")
                continue
            twin = folded.get(fold(m))
            if twin is not None:
                if any(self.payload[twin].get(a, d) != d for a, d in self.payload[m].items()):
                    raise PackageRejected("bad_bag", f"{m} and {twin} name the same file with different hashes")
                del self.payload[m]
                tolerated += 1
                self.warnings.append(f"{m} and {twin} differ only in case or normalisation")
                continue
            if OS_CRUFT.fullmatch(posixpath.basename(m)):
                del self.payload[m]
                tolerated += 1
                self.warnings.append(f"{m} (a system file) is listed but missing")
                continue
            raise PackageRejected("bad_bag", f"{m} is listed in the manifest but missing")
        for p in sorted(extra):
            if OS_CRUFT.fullmatch(posixpath.basename(p)):
                self.warnings.append(f"{p} (a system file) is not in the manifest; ignored")
                continue
            raise PackageRejected("bad_bag", f"{p} is not listed in the manifest")
        seen: dict[str, str] = {}
        for p in self.payload:
            if OS_CRUFT.fullmatch(posixpath.basename(p)):
                self.warnings.append(f"{p} is a system file")
            if fold(p) in seen:
                self.warnings.append(f"{p} and {seen[fold(p)]} would collide on a case-insensitive disk")
            seen.setdefault(fold(p), p)
        if self.oxum is not None:
            found = (sum(present[p] for p in self.payload), len(self.payload))
            if found != self.oxum:
                msg = f"Payload-Oxum says {self.oxum[0]}.{self.oxum[1]} but the payload is {found[0]}.{found[1]}"
                if not tolerated:
                    raise PackageRejected("bad_bag", msg)
                self.warnings.append(msg)

    def close(self) -> None:
        """Release the tar file, if any."""
        if self._tar is not None:
            self._tar.close()
            self._tar = None

    def __enter__(self) -> "Bag":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class WriteError(OSError):
    """Writing the copy failed (the store's disk, e.g. ENOSPC), not reading the bag."""


def file_sha256(path: Path) -> str:
    """The hex SHA-256 of a whole file."""
    with open(path, "rb") as f:
        return hash_stream(f, ["sha256"])["sha256"]


def hash_stream(
    f: BinaryIO, algorithms: Iterable[str], progress: Callable[[int], None] | None = None, dst: BinaryIO | None = None
) -> dict[str, str]:
    """Hex digests of everything `f` yields, read once in 1 MiB chunks (copied to `dst` on the way)."""
    hashers = {a: hashlib.new(a) for a in algorithms}
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    readinto = getattr(f, "readinto", None)
    while True:
        if readinto is not None:
            n = readinto(buf)
            chunk = view[:n]
        else:
            data = f.read(CHUNK)
            n, chunk = len(data), data
        if not n:
            break
        for h in hashers.values():
            h.update(chunk)
        if dst is not None:
            try:
                dst.write(chunk)
            except OSError as e:
                raise WriteError(e.errno, e.strerror) from e
        if progress:
            progress(n)
    return {a: h.hexdigest() for a, h in hashers.items()}


# --- opening ------------------------------------------------------------------


def walk_folder(root: Path, sub: str = "") -> tuple[dict[str, int], set[str]]:
    """Regular files (relpath -> size) and folders under root/sub; unsafe_path on anything else."""
    files: dict[str, int] = {}
    dirs: set[str] = set()
    stack = [sub] if sub else [""]
    while stack:
        rel = stack.pop()
        try:
            entries = list(os.scandir(root / rel if rel else root))
        except FileNotFoundError:
            if rel == sub:
                return files, dirs
            raise PackageRejected("bad_bag", f"{rel} vanished while being read") from None
        except OSError as e:
            raise PackageRejected("bad_bag", f"{rel or root.name} cannot be read: {e.strerror}") from None
        for e in entries:
            name = f"{rel}/{e.name}" if rel else e.name
            try:
                st = e.stat(follow_symlinks=False)
            except OSError as err:
                raise PackageRejected("bad_bag", f"{name} cannot be read: {err.strerror}") from None
            if stat.S_ISDIR(st.st_mode):
                dirs.add(name)
                stack.append(name)
            elif stat.S_ISREG(st.st_mode):
                if st.st_nlink > 1:
                    # a hard link shares its bytes with a file outside the bag, which
                    # could change them after verification
                    raise UnsafePath(f"{name} is a hard link")
                files[name] = st.st_size
            elif stat.S_ISLNK(st.st_mode):
                raise UnsafePath(f"{name} is a symbolic link")
            else:
                raise UnsafePath(f"{name} is not a regular file (device, pipe or socket)")
            if len(files) + len(dirs) > MAX_FILES:
                raise PackageRejected("bad_bag", f"more than {MAX_FILES} files")
    return files, dirs


def _open_folder(path: Path) -> Bag:
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        raise UnsafePath(f"{path.name} is a symbolic link")
    if not stat.S_ISDIR(st.st_mode):
        raise PackageRejected("bad_bag", f"{path.name} is not a folder or a .tar file")
    files, dirs = walk_folder(path, "")
    bag = Bag(path=path, is_tar=False)
    bag.tags = {n: s for n, s in files.items() if not n.startswith("data/")}
    if "data" not in dirs:
        raise PackageRejected("bad_bag", "there is no data/ folder")
    return bag


def _member_name(m: tarfile.TarInfo) -> str:
    name = m.name
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise UnsafePath(f"tar member {name!r} has an absolute path")
    while name.startswith("./"):
        name = name[2:]
    name = name.rstrip("/")
    if name in ("", "."):
        return ""
    check_relpath(name, "the tar")
    return name


class _BoundedTarInfo(tarfile.TarInfo):
    """A tar header that refuses a long-name or pax header over MAX_HEADER_BYTES before tarfile reads it whole."""

    def _proc_member(self, tarfile_: tarfile.TarFile) -> tarfile.TarInfo:
        if self.type in _EXTENDED and self.size > MAX_HEADER_BYTES:
            raise PackageRejected("bad_bag", f"a tar header of {self.size} bytes (at most {MAX_HEADER_BYTES})")
        return super()._proc_member(tarfile_)  # type: ignore[misc]


_EXTENDED = (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE)


def _open_tar(path: Path) -> Bag:
    try:
        # uncompressed only, as DESIGN.md says
        tar = tarfile.open(path, mode="r:", tarinfo=_BoundedTarInfo)  # type: ignore[call-overload]
    except (tarfile.TarError, OSError) as e:
        raise PackageRejected("bad_bag", f"{path.name} is not an uncompressed tar file: {e}") from None
    try:
        members: list[tarfile.TarInfo] = []
        try:
            for m in tar:  # header by header: stop at the limit, not after reading them all
                members.append(m)
                if len(members) > MAX_FILES:
                    raise PackageRejected("bad_bag", f"more than {MAX_FILES} members")
        except (tarfile.TarError, OSError) as e:
            raise PackageRejected("bad_bag", f"{path.name} is a damaged or truncated tar: {e}") from None
        names: dict[str, tarfile.TarInfo] = {}
        dest = "/nonexistent-extract-root"
        size = os.fstat(tar.fileobj.fileno()).st_size  # type: ignore[union-attr]
        for m in members:
            if m.isreg() and m.offset_data + m.size > size:
                # tarfile stops quietly at a cut-off end; a copy still arriving looks like this
                raise PackageRejected("bad_bag", f"{path.name} is truncated inside {m.name!r}")
            name = _member_name(m)
            if m.issym() or m.islnk():
                raise UnsafePath(f"tar member {m.name!r} is a link")
            if m.isdev() or not (m.isreg() or m.isdir()):
                raise UnsafePath(f"tar member {m.name!r} is not a regular file or folder")
            try:
                # the standard library's own judgement, before anything is written
                tarfile.data_filter(m, dest)
            except tarfile.FilterError as e:
                raise UnsafePath(f"tar member {m.name!r}: {e}") from None
            if not name:
                continue
            if name in names and not (m.isdir() and names[name].isdir()):
                raise PackageRejected("bad_bag", f"tar member {name!r} appears twice")
            names[name] = m
            if len(names) > MAX_FILES:
                raise PackageRejected("bad_bag", f"more than {MAX_FILES} members")
        root = ""
        if "bagit.txt" not in names:
            tops = {n.split("/", 1)[0] for n in names}
            if len(tops) != 1 or f"{next(iter(tops))}/bagit.txt" not in names:
                raise PackageRejected("bad_bag", "the tar holds neither bagit.txt nor one folder with a bag")
            root = next(iter(tops))
        bag = Bag(path=path, is_tar=True, _tar=tar, _root=root)
        prefix = f"{root}/" if root else ""
        has_data = False
        for n, m in names.items():
            if n == root:
                if not m.isdir():
                    raise PackageRejected("bad_bag", f"{root} is not a folder")
                continue
            rel = n[len(prefix):]
            if rel == "data" or rel.startswith("data/"):
                has_data = True
            if m.isreg():
                bag._members[rel] = m
                if not rel.startswith("data/"):
                    bag.tags[rel] = m.size
        if not has_data:
            raise PackageRejected("bad_bag", "there is no data/ folder")
        return bag
    except BaseException:
        tar.close()
        raise


def open_bag(path: Path) -> Bag:
    """Open a bag (folder or uncompressed .tar) and read its tag files; no payload is read."""
    path = Path(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise PackageRejected("bad_bag", f"{path} does not exist") from None
    bag = _open_tar(path) if stat.S_ISREG(st.st_mode) else _open_folder(path)
    try:
        if "bagit.txt" not in bag.tags:
            raise PackageRejected("bad_bag", "bagit.txt is missing")
        bag.version, bag.encoding = parse_bagit_txt(bag.read_tag("bagit.txt", 4096), bag.warnings)
        if "bag-info.txt" in bag.tags:
            bag.bag_info, bag.oxum = parse_bag_info(bag._text("bag-info.txt"))
        if "fetch.txt" in bag.tags:
            bag.fetch = parse_fetch(bag._text("fetch.txt"), bag.warnings)
        manifests: dict[str, dict[str, str]] = {}
        for name in sorted(bag.tags):
            m = MANIFEST_NAME.fullmatch(name)
            if not m:
                continue
            alg = m.group(2).lower()
            if alg not in hashlib.algorithms_guaranteed:
                bag.warnings.append(f"{name} uses an unknown algorithm; ignored")
                continue
            entries = parse_manifest(
                bag._text(name), name, alg, not m.group(1), bag.version, bag.warnings,
                None if m.group(1) else bag._undecoded,
            )
            bag._cache.pop(name, None)  # parsed: its bytes need not stay in memory
            target = bag.tag_manifest if m.group(1) else manifests
            if not m.group(1):
                manifests[alg] = entries
            else:
                for rel, digest in entries.items():
                    target.setdefault(rel, {})[alg] = digest
        if not manifests:
            raise PackageRejected("bad_bag", "there is no payload manifest (manifest-<algorithm>.txt)")
        listed = [set(e) for e in manifests.values()]
        if any(s != listed[0] for s in listed[1:]):
            raise PackageRejected("bad_bag", "the payload manifests do not all list the same files")
        bag.manifest_algorithms = set(manifests)
        for alg, entries in manifests.items():
            for rel, digest in entries.items():
                bag.payload.setdefault(rel, {})[alg] = digest
        for rel in bag.fetch:
            if rel not in bag.payload:
                raise PackageRejected("bad_bag", f"{rel} in fetch.txt is not in the manifest")
    except BaseException:
        bag.close()
        raise
    for w in bag.warnings:
        log.debug("event=bag_warning path=%s warning=%r", path, w)
    return bag


def validate_bag(path: Path, progress: Progress | None = None) -> list[str]:
    """The full BagIt check, payload hashes included; returns warnings, raises PackageRejected."""
    with open_bag(path) as bag:
        bag.check_tags()
        bag.check_complete()
        verify_payload(bag, progress)
        return list(bag.warnings)


def verify_payload(bag: Bag, progress: Progress | None = None) -> None:
    """Hash every payload file once, with every listed algorithm; bad_hash on a mismatch."""
    sizes = bag.present()
    total = sum(sizes.get(p, 0) for p in bag.payload)
    done = 0

    def step(n: int) -> None:
        nonlocal done
        done += n
        if progress:
            progress(done, total, rel)

    for rel in sorted(bag.payload):
        bag.copy_payload(rel, None, step)
