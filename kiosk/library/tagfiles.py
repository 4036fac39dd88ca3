"""The text of a bag's tag files (bagit.txt, bag-info.txt, manifests, fetch.txt), as RFC 8493 has it.

Pure functions over bytes and text, so each rule is tested apart from files.
"""

from __future__ import annotations

import codecs
import hashlib
import re
import unicodedata

from kiosk.errors import PackageRejected, UnsafePath

MAX_FILES = 20_000  # files, tar members or lines of one manifest: more is junk, not one package
VERSIONS = {(1, 0), (0, 97), (0, 96), (0, 95), (0, 94), (0, 93)}

_BAGIT_LINE1 = re.compile(r"BagIt-Version: ([0-9]+)\.([0-9]+)")
_BAGIT_LINE2 = re.compile(r"Tag-File-Character-Encoding: (\S+)")
MANIFEST_NAME = re.compile(r"(tag)?manifest-([A-Za-z0-9]+)\.txt")
_MANIFEST_LINE = re.compile(r"([0-9A-Fa-f]+)[ \t]+(.+)")
_LINES = re.compile(r"\r\n|\r|\n")
_PCT = re.compile(r"%(0[AaDd]|25)")


def split_lines(text: str) -> list[str]:
    """Lines ended by LF, CR or CRLF, as RFC 8493 allows."""
    lines = _LINES.split(text)
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def decode_path(raw: str) -> str:
    """Undo RFC 8493's percent-encoding of CR, LF and % in manifest paths (and only those)."""
    return _PCT.sub(lambda m: chr(int(m.group(1), 16)), raw)


def encode_path(path: str) -> str:
    """Percent-encode CR, LF and % for a manifest line (RFC 8493 2.1.3)."""
    return path.replace("%", "%25").replace("\n", "%0A").replace("\r", "%0D")


def check_relpath(path: str, where: str) -> str:
    """Refuse a bag-relative path that is absolute, climbs out or is otherwise unsafe."""
    if not path or "\x00" in path:
        raise UnsafePath(f"empty or NUL path in {where}")
    if path.startswith(("/", "~", "\\")) or re.match(r"^[A-Za-z]:", path):
        raise UnsafePath(f"{path!r} in {where} is an absolute path")
    parts = path.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise UnsafePath(f"{path!r} in {where} is not a plain relative path")
    return path


def fold(path: str) -> str:
    """The form two names take when a case-insensitive, normalising file system sees them."""
    return unicodedata.normalize("NFC", path).casefold()


def parse_manifest(
    text: str, name: str, alg: str, payload: bool, version: tuple[int, int], warnings: list[str],
    undecoded: dict[str, str] | None = None,
) -> dict[str, str]:
    """One manifest's entries (path -> hex digest), paths checked; `payload` ones must be under data/.

    `undecoded` collects the path as written where percent-decoding changed it: older
    tools (bagit-python among them) do not encode `%`, so a name may mean itself.
    """
    out: dict[str, str] = {}
    size = hashlib.new(alg).digest_size * 2
    lines = split_lines(text)
    if len(lines) > MAX_FILES:
        raise PackageRejected("bad_bag", f"{name} has more than {MAX_FILES} lines")
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        m = _MANIFEST_LINE.fullmatch(line)
        if not m or len(m.group(1)) != size:
            raise PackageRejected("bad_bag", f"{name} line {n} is not '<{alg} hex> <path>'")
        digest, raw = m.group(1).lower(), m.group(2)
        if raw.startswith("*"):
            raw = raw[1:]
            warnings.append(f"{name} line {n} has md5sum's binary marker '*'")
        if raw.startswith("./"):
            raw = raw[2:]
            warnings.append(f"{name} line {n} starts with './'")
        rel = check_relpath(decode_path(raw), name)
        if undecoded is not None and rel != raw:
            undecoded[rel] = check_relpath(raw, name)
        if payload and not rel.startswith("data/"):
            raise UnsafePath(f"{rel!r} in {name} is outside data/")
        if not payload and rel.startswith("data/"):
            raise PackageRejected("bad_bag", f"{name} lists payload file {rel}")
        if rel in out:
            if out[rel] != digest:
                raise PackageRejected("bad_bag", f"{rel} is listed twice in {name} with different hashes")
            if version >= (1, 0):
                raise PackageRejected("bad_bag", f"{rel} is listed twice in {name}")
            warnings.append(f"{rel} is listed twice in {name}")
        out[rel] = digest
    return out


def parse_bagit_txt(raw: bytes, warnings: list[str]) -> tuple[tuple[int, int], str]:
    """(version, tag file encoding) from bagit.txt, which RFC 8493 fixes to exactly two lines."""
    if raw.startswith((codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise PackageRejected("bad_bag", "bagit.txt must not start with a byte-order mark")
    try:
        lines = split_lines(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise PackageRejected("bad_bag", "bagit.txt is not UTF-8") from None
    if any(line != line.rstrip(" \t") for line in lines):
        warnings.append("bagit.txt has trailing whitespace")
        lines = [line.rstrip(" \t") for line in lines]
    m1 = _BAGIT_LINE1.fullmatch(lines[0]) if lines else None
    m2 = _BAGIT_LINE2.fullmatch(lines[1]) if len(lines) > 1 else None
    if not m1:
        raise PackageRejected("bad_bag", "bagit.txt does not start with 'BagIt-Version: M.N'")
    if not m2:
        raise PackageRejected("bad_bag", "bagit.txt lacks 'Tag-File-Character-Encoding: ...' as its second line")
    if len(lines) > 2:
        raise PackageRejected("bad_bag", "bagit.txt has more than two lines")
    version = (int(m1.group(1)), int(m1.group(2)))
    if version not in VERSIONS:
        raise PackageRejected("bad_bag", f"BagIt version {m1.group(1)}.{m1.group(2)} is not supported")
    try:
        b"".decode(m2.group(1))  # a codec that is no text encoding (rot13, base64) fails here too
    except LookupError:
        raise PackageRejected("bad_bag", f"unknown tag file encoding {m2.group(1)}") from None
    return version, m2.group(1)


def parse_bag_info(text: str) -> tuple[list[tuple[str, str]], tuple[int, int] | None]:
    """bag-info.txt's (label, value) pairs, continuation lines joined, and its Payload-Oxum."""
    info: list[tuple[str, str]] = []
    for n, line in enumerate(split_lines(text), 1):
        if not line.strip():
            continue
        if line[0] in " \t" and info:
            info[-1] = (info[-1][0], f"{info[-1][1]} {line.strip()}")
            continue
        label, sep, value = line.partition(":")
        if not sep or not label.strip():
            raise PackageRejected("bad_bag", f"bag-info.txt line {n} is not 'Label: value'")
        info.append((label.strip(), value.strip()))
    oxums = {v for k, v in info if k.lower() == "payload-oxum"}
    if len(oxums) > 1:
        raise PackageRejected("bad_bag", "bag-info.txt has more than one Payload-Oxum")
    if not oxums:
        return info, None
    m = re.fullmatch(r"([0-9]+)\.([0-9]+)", oxums.pop())
    if not m:
        raise PackageRejected("bad_bag", "Payload-Oxum is not '<bytes>.<files>'")
    return info, (int(m.group(1)), int(m.group(2)))


def parse_fetch(text: str, warnings: list[str]) -> list[str]:
    """The payload paths fetch.txt names, each checked."""
    paths: list[str] = []
    for n, line in enumerate(split_lines(text), 1):
        if not line.strip():
            continue
        parts = line.split(None, 2)
        if len(parts) != 3 or not (parts[1] == "-" or parts[1].isdigit()):
            raise PackageRejected("bad_bag", f"fetch.txt line {n} is not '<url> <length> <path>'")
        rel = check_relpath(decode_path(parts[2]), "fetch.txt")
        if not rel.startswith("data/"):
            raise UnsafePath(f"{rel!r} in fetch.txt is outside data/")
        paths.append(rel)
    # the box never fetches: a fetch.txt is fine only when its files are already here
    warnings.append("fetch.txt is ignored; every file must already be in the bag")
    return paths
