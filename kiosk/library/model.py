"""The library's value types: what the catalogue holds and what ingest answers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

CATEGORIES = ("agriculture", "health", "law", "culture", "children", "lectures", "local")
OUTCOMES = ("published", "unchanged", "skipped", "waiting", "rejected")
REASONS = (
    "bad_bag", "bad_record", "bad_hash", "bad_signature", "untrusted", "unsafe_path",
    "too_large", "expired", "no_space", "withdrawn",
)


@dataclass(frozen=True)
class FileEntry:
    """One payload file of a published item; `path` is relative to data/."""

    path: str
    size: int
    sha256: str
    media_type: str

    def url(self, item_id: str, version: int) -> str:
        """Where the web server serves this file."""
        from urllib.parse import quote

        return f"/media/{item_id}/{version}/{quote(self.path)}"


@dataclass(frozen=True)
class Item:
    """A published content item, as the screens and the API see it."""

    id: str
    version: int
    title: str
    description: str
    category: str
    language: str = "zh-CN"
    tags: tuple[str, ...] = ()
    main: str = ""
    poster: str | None = None
    priority: int = 5
    expires: str | None = None
    published_at: float = 0.0
    pinned: bool = False
    files: tuple[FileEntry, ...] = ()
    narration: str | None = None  # a recorded reading, played by 读一读 instead of synthetic speech

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def main_file(self) -> FileEntry | None:
        return next((f for f in self.files if f.path == self.main), None)

    def to_json(self) -> dict[str, Any]:
        """The item as GET /api/v1/items returns it."""
        return {
            "id": self.id,
            "version": self.version,
            "title": self.title,
            "description": self.description,
            "category": self.category,
            "language": self.language,
            "tags": list(self.tags),
            "main": self.main,
            "poster": self.poster,
            "narration": self.narration,
            "priority": self.priority,
            "expires": self.expires,
            "published_at": self.published_at,
            "files": [
                {"path": f.path, "size": f.size, "sha256": f.sha256, "media_type": f.media_type, "url": f.url(self.id, self.version)}
                for f in self.files
            ],
        }


@dataclass(frozen=True)
class Outcome:
    """What ingest made of one package."""

    source: str
    outcome: str
    id: str | None = None
    version: int | None = None
    reason: str | None = None
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rejected(self) -> bool:
        return self.outcome == "rejected"

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "outcome": self.outcome,
            "id": self.id,
            "version": self.version,
            "reason": self.reason,
            "detail": self.detail,
        }
