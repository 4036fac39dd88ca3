"""The content library: ingest, store, catalogue, search, quarantine, eviction.

`Library` is the one object other parts use. Its method signatures are the
contract between the library and the web, scheduler and uplink parts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable

from kiosk.config import Config
from kiosk.library.model import CATEGORIES, FileEntry, Item, Outcome

__all__ = ["Library", "Item", "FileEntry", "Outcome", "CATEGORIES"]

# progress(done_bytes, total_bytes, label) is called during long work.
Progress = Callable[[int, int, str], None]


class Library:
    """The box's content: opened from a Config, safe to share between threads."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg

    # --- ingest ---------------------------------------------------------------
    def ingest(self, path: Path, source: str = "cli", progress: Progress | None = None) -> Outcome:
        """Ingest one bag (folder or .tar) and say what became of it."""
        raise NotImplementedError

    def ingest_tree(self, root: Path, source: str = "usb", progress: Progress | None = None) -> list[Outcome]:
        """Ingest every bag found under `root` (a USB disk's folder)."""
        raise NotImplementedError

    # --- reading (the screens and the API) ----------------------------------------
    def items(self, category: str | None = None, q: str | None = None, limit: int = 50, offset: int = 0) -> list[Item]:
        """Visible items, newest first, or best match first when `q` is given."""
        raise NotImplementedError

    def item(self, item_id: str) -> Item:
        """One visible item, or NotFound."""
        raise NotImplementedError

    def categories(self) -> list[dict[str, Any]]:
        """[{"slug", "count", "newest"}] for every category with visible items ("other" included)."""
        raise NotImplementedError

    def media_path(self, item_id: str, version: int, path: str) -> tuple[Path, FileEntry]:
        """The file on disk and its entry, for a visible item's payload file; NotFound otherwise."""
        raise NotImplementedError

    def mark_opened(self, item_id: str) -> None:
        """Note that an item was opened (least recently opened is evicted first)."""
        raise NotImplementedError

    # --- the administrator ------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """{"items", "bytes", "last_ingest", "quarantined", "free_bytes", "total_bytes"}."""
        raise NotImplementedError

    def recent(self, limit: int = 20) -> list[dict[str, Any]]:
        """The latest ingest outcomes, newest first."""
        raise NotImplementedError

    def quarantine(self) -> list[dict[str, Any]]:
        """Quarantined packages with reason code, plain-words reason and when."""
        raise NotImplementedError

    def pin(self, item_id: str, pinned: bool = True) -> None:
        """Keep an item from automatic eviction (or release it)."""
        raise NotImplementedError

    def delete(self, item_id: str) -> None:
        """Remove an item from the screens and the store."""
        raise NotImplementedError

    # --- housekeeping (the scheduler) ----------------------------------------------
    def expire(self) -> list[str]:
        """Hide items past their expiry date; return their ids."""
        raise NotImplementedError

    def evict(self) -> list[str]:
        """Remove whole packages until storage.min_free_percent is free; return their ids."""
        raise NotImplementedError

    def close(self) -> None:
        """Close the catalogue's connections."""
