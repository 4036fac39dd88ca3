"""The catalogue record a package carries in kiosk.json, checked field by field."""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import asdict, dataclass
from typing import Any

from kiosk.errors import PackageRejected

MAX_RECORD_BYTES = 64 * 1024  # kiosk.json is a small tag file; anything bigger is refused
ID_RE = re.compile(r"[a-z0-9._-]{1,64}")
CATEGORY_RE = re.compile(r"[a-z0-9]+(?:[-_][a-z0-9]+)*")
LANGUAGE_RE = re.compile(r"[A-Za-z]{2,8}(?:-[A-Za-z0-9]{1,8})*")  # BCP 47's shape, not its registry
LIMITS = {"title": 200, "description": 10_000, "language": 35, "category": 40, "tag": 50, "path": 1024}
MAX_TAGS = 50
MAX_WITHDRAWS = 1000
NARRATION_TYPES = (".mp3", ".m4a", ".ogg", ".opus", ".wav")  # what Chromium plays
MAX_VERSION = 2**63 - 1  # the catalogue keeps versions as SQLite integers
KINDS = ("content", "software")
COMPONENTS = {"app": "wheels", "os": "os"}  # a software package's component -> its payload folder under data/
PLATFORM_RE = re.compile(r"^[a-z0-9_]{1,32}-[a-z0-9_]{1,32}$")  # sys.platform-machine, e.g. linux-aarch64
MAX_TARGETS = 10_000


@dataclass(frozen=True)
class Targets:
    """Which points a package is for: named points, townships, or a share of the fleet by a stable hash."""

    points: tuple[str, ...] = ()
    townships: tuple[str, ...] = ()
    percent: int = 0


@dataclass(frozen=True)
class Software:
    """What a software package carries: the component, the release's version, the platforms it runs on."""

    component: str
    version: str
    platforms: tuple[str, ...]


@dataclass(frozen=True)
class Record:
    """A validated kiosk.json; `main`, `poster` and `narration` are relative to data/."""

    id: str
    version: int
    title: str = ""
    description: str = ""
    language: str = "zh-CN"
    tags: tuple[str, ...] = ()
    category: str = "other"
    main: str | None = None
    poster: str | None = None
    priority: int = 5
    expires: str | None = None
    withdraws: tuple[str, ...] | None = None
    narration: str | None = None  # a recording that 读一读 plays instead of synthetic speech
    kind: str = "content"
    targets: Targets | None = None
    software: Software | None = None

    @property
    def is_software(self) -> bool:
        """A software package carries a release, not something for the screens."""
        return self.kind == "software"

    @property
    def is_recall(self) -> bool:
        """A recall withdraws ids and is not itself listed."""
        return self.withdraws is not None

    def expired(self, now: float) -> bool:
        """Whether `now` (epoch seconds, local time) is after the expiry date."""
        if self.expires is None:
            return False
        local_now = dt.datetime.fromtimestamp(now)
        when = _parse_when(self.expires)
        if isinstance(when, dt.datetime):
            if when.tzinfo is not None:
                return dt.datetime.fromtimestamp(now, dt.timezone.utc) > when
            return local_now > when
        return local_now.date() > when

    def to_json(self) -> dict[str, Any]:
        """The record as a JSON-ready dict (data/-relative paths)."""
        d = asdict(self)
        d["tags"] = list(self.tags)
        d["withdraws"] = list(self.withdraws) if self.withdraws is not None else None
        if self.targets is not None:
            d["targets"] = {"points": list(self.targets.points), "townships": list(self.targets.townships),
                            "percent": self.targets.percent}
        if self.software is not None:
            d["software"] = {"component": self.software.component, "version": self.software.version,
                             "platforms": list(self.software.platforms)}
        return d


def _bad(field: str, why: str) -> PackageRejected:
    return PackageRejected("bad_record", f"kiosk.json: {field} {why}")


def _parse_when(value: str) -> dt.date | dt.datetime:
    if len(value) == 10:
        return dt.date.fromisoformat(value)
    return dt.datetime.fromisoformat(value)


def _string(obj: dict[str, Any], name: str, default: str | None, limit: int, required: bool = False) -> str | None:
    if name not in obj or obj[name] is None:
        if required:
            raise _bad(name, "is required")
        return default
    value = obj[name]
    if not isinstance(value, str):
        raise _bad(name, f"must be a string, not {type(value).__name__}")
    if len(value) > limit:
        raise _bad(name, f"is longer than {limit} characters")
    if any(ord(c) < 32 and c not in "\n\t" for c in value) and name != "description":
        raise _bad(name, "contains control characters")
    return value


def _int(obj: dict[str, Any], name: str, default: int | None, lo: int, hi: int) -> int | None:
    if name not in obj:
        return default
    value = obj[name]
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(name, f"must be an integer, not {type(value).__name__}")
    if not lo <= value <= hi:
        raise _bad(name, f"must be between {lo} and {hi}")
    return value


def check_id(value: Any, field: str = "id") -> str:
    """An item id: 1 to 64 of a-z 0-9 . _ - (and not only dots, which would name a folder's parent)."""
    if not isinstance(value, str):
        raise _bad(field, f"must be a string, not {type(value).__name__}")
    if not ID_RE.fullmatch(value) or set(value) == {"."}:
        raise _bad(field, f"{value[:80]!r} is not 1 to 64 of a-z 0-9 . _ -")
    return value


def data_path(value: Any, field: str) -> str:
    """A payload path as kiosk.json gives it ("x.mp4" or "data/x.mp4"), made relative to data/."""
    if not isinstance(value, str):
        raise _bad(field, f"must be a string, not {type(value).__name__}")
    if len(value) > LIMITS["path"]:
        raise _bad(field, f"is longer than {LIMITS['path']} characters")
    path = value[5:] if value.startswith("data/") else value
    parts = path.split("/")
    if not path or path.startswith("/") or "\\" in path or "\x00" in path or any(p in ("", ".", "..") for p in parts):
        raise _bad(field, f"{value!r} is not a plain path under data/")
    return path


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _bad(k, "appears twice")
        out[k] = v
    return out


def _no_constants(name: str) -> Any:
    raise _bad("value", f"{name} is not JSON")


def parse_record(raw: bytes) -> Record:
    """Parse and check kiosk.json; PackageRejected("bad_record", detail naming the field) otherwise."""
    if len(raw) > MAX_RECORD_BYTES:
        raise PackageRejected("bad_record", f"kiosk.json is larger than {MAX_RECORD_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise PackageRejected("bad_record", "kiosk.json is not UTF-8") from None
    if text.startswith("\ufeff"):
        text = text[1:]  # Windows editors add a BOM; it carries no meaning
    try:
        obj = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    except json.JSONDecodeError as e:
        raise PackageRejected("bad_record", f"kiosk.json is not JSON: {e.msg} at line {e.lineno}") from None
    except RecursionError:
        raise PackageRejected("bad_record", "kiosk.json is nested too deeply") from None
    if not isinstance(obj, dict):
        raise PackageRejected("bad_record", "kiosk.json must hold a JSON object")

    if "id" not in obj:
        raise _bad("id", "is required")
    item_id = check_id(obj["id"])
    if "version" not in obj:
        raise _bad("version", "is required")
    version = _int(obj, "version", None, 1, MAX_VERSION)
    assert version is not None

    withdraws: tuple[str, ...] | None = None
    if obj.get("withdraws") is not None:
        w = obj["withdraws"]
        if not isinstance(w, list) or not w:
            raise _bad("withdraws", "must be a non-empty list of ids")
        if len(w) > MAX_WITHDRAWS:
            raise _bad("withdraws", f"lists more than {MAX_WITHDRAWS} ids")
        withdraws = tuple(check_id(x, "withdraws") for x in w)
    recall = withdraws is not None

    title = _string(obj, "title", "", LIMITS["title"])
    if not (title or "").strip() and not recall:
        title = item_id  # a tile needs some words; the id is better than a blank
    description = _string(obj, "description", "", LIMITS["description"])
    language = (_string(obj, "language", "zh-CN", LIMITS["language"]) or "").replace("_", "-")
    if not LANGUAGE_RE.fullmatch(language):
        raise _bad("language", f"{language!r} is not a BCP 47 language tag")
    category = _string(obj, "category", "other", LIMITS["category"])
    if not CATEGORY_RE.fullmatch(category or ""):
        raise _bad("category", f"{category!r} is not a slug (a-z, 0-9, - and _)")

    tags_raw = obj.get("tags")
    if tags_raw is None:
        tags_raw = []
    if not isinstance(tags_raw, list):
        raise _bad("tags", f"must be a list, not {type(tags_raw).__name__}")
    if len(tags_raw) > MAX_TAGS:
        raise _bad("tags", f"has more than {MAX_TAGS} entries")
    tags = []
    for t in tags_raw:
        if not isinstance(t, str) or not t.strip() or len(t) > LIMITS["tag"]:
            raise _bad("tags", f"entries must be strings of 1 to {LIMITS['tag']} characters")
        tags.append(t.strip())

    kind = obj.get("kind", "content")
    if kind not in KINDS:
        raise _bad("kind", f"{str(kind)[:40]!r} is not one of {', '.join(KINDS)}")
    software = _software(obj.get("software")) if kind == "software" else None
    if kind != "software" and obj.get("software") is not None:
        raise _bad("software", 'is only for a package of kind "software"')
    if software is not None and recall:
        raise _bad("withdraws", "cannot be in a software package")
    targets = _targets(obj["targets"]) if obj.get("targets") is not None else None

    main = None
    if obj.get("main") is not None:
        if recall:
            raise _bad("main", "must be absent in a recall (a record with withdraws)")
        main = data_path(obj["main"], "main")
    elif not recall and software is None:
        raise _bad("main", "is required (the path under data/ of the file to open)")
    poster = data_path(obj["poster"], "poster") if obj.get("poster") is not None else None
    narration = data_path(obj["narration"], "narration") if obj.get("narration") is not None else None
    if narration is not None and not narration.lower().endswith(NARRATION_TYPES):
        raise _bad("narration", f"{narration!r} is not an audio file ({', '.join(NARRATION_TYPES)})")

    priority = _int(obj, "priority", 5, 0, 9)
    expires = _string(obj, "expires", None, 40)
    if expires is not None:
        try:
            _parse_when(expires)
        except ValueError:
            raise _bad("expires", f"{expires!r} is not an ISO date") from None

    return Record(
        id=item_id, version=version, title=title or "", description=description or "",
        language=language or "zh-CN", tags=tuple(tags), category=category or "other",
        main=main, poster=poster, priority=priority if priority is not None else 5,
        expires=expires, withdraws=withdraws, narration=narration, kind=kind, targets=targets, software=software,
    )


def parse_targets(value: Any) -> Targets:
    """`targets` as kiosk.json or an index entry gives it; bad_record naming the field otherwise."""
    return _targets(value)


def _targets(value: Any) -> Targets:
    if not isinstance(value, dict):
        raise _bad("targets", f"must be an object, not {type(value).__name__}")
    unknown = sorted(set(value) - {"points", "townships", "percent"})
    if unknown:
        raise _bad("targets", f"has an unknown field {unknown[0][:40]!r}")
    lists: dict[str, tuple[str, ...]] = {}
    for name in ("points", "townships"):
        raw = value.get(name) or []
        if not isinstance(raw, list) or len(raw) > MAX_TARGETS:
            raise _bad(f"targets.{name}", f"must be a list of at most {MAX_TARGETS} names")
        if not all(isinstance(x, str) and 0 < len(x) <= LIMITS["title"] for x in raw):
            raise _bad(f"targets.{name}", f"entries must be strings of 1 to {LIMITS['title']} characters")
        lists[name] = tuple(raw)
    percent = 0 if value.get("percent") is None else _int({"targets.percent": value["percent"]}, "targets.percent", 0, 0, 100)
    return Targets(points=lists["points"], townships=lists["townships"], percent=percent or 0)


def _software(value: Any) -> Software:
    from packaging.version import InvalidVersion, Version

    if not isinstance(value, dict):
        raise _bad("software", 'is required as an object in a package of kind "software"')
    component = value.get("component")
    if component not in COMPONENTS:
        raise _bad("software.component", f"must be one of {', '.join(COMPONENTS)}")
    version = _string(value, "version", None, 64, required=True) or ""
    if component == "app":
        try:
            Version(version)
        except InvalidVersion:
            raise _bad("software.version", f"{version!r} is not a PEP 440 version") from None
    elif not version.strip():
        raise _bad("software.version", "is required")
    platforms = value.get("platforms")
    if not isinstance(platforms, list) or not platforms or len(platforms) > 20:
        raise _bad("software.platforms", "must be a list of 1 to 20 platforms, e.g. linux-aarch64")
    for p in platforms:
        if not isinstance(p, str) or not PLATFORM_RE.match(p):
            raise _bad("software.platforms", f"{str(p)[:40]!r} is not a platform such as linux-aarch64")
    return Software(component=component, version=version, platforms=tuple(platforms))
