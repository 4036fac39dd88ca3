"""What arrived, as the device page names it: programme titles (or the file name put on the disk), plain reasons.

The library keeps ingest outcomes and quarantine records with paths, ids and reason
codes; the administrator knows programmes by their titles and disks by the file names
on them. These pure functions turn the one into the other and never let a folder path
or an exception's English text through.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

SOURCE_WORDS = {"usb": "U盘", "spool": "卫星", "telecom": "网络", "cli": "技术员导入", "admin": "管理页", "local": "本机"}
UNREADABLE = "（没有名字的节目包）"


def file_name(path: Any) -> str:
    """The last part of a path: the name the person gave the file or folder, never where it lies."""
    name = str(path or "").replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    return name or UNREADABLE


def titles_for(ids: Iterable[str | None], title_of: Callable[[str], str | None]) -> dict[str, str]:
    """The titles of the ids the lists name, asked once each (a programme no longer here has none)."""
    out: dict[str, str] = {}
    for i in ids:
        if i and i not in out:
            t = title_of(i)
            if t:
                out[i] = t
    return out


def recent_view(rows: list[dict[str, Any]], titles: dict[str, str], reasons: dict[str, str]) -> list[dict[str, Any]]:
    """The latest ingest outcomes, each named by title (else its file name) with the reason in plain words."""
    return [{
        "at": r.get("at"),
        "name": titles.get(r.get("id") or "") or file_name(r.get("source")),
        "version": r.get("version"),
        "outcome": r.get("outcome"),
        "reason": reasons.get(r.get("reason") or "", "没有通过检查") if r.get("reason") else "",
    } for r in rows]


def quarantine_view(entries: list[dict[str, Any]], titles: dict[str, str]) -> list[dict[str, Any]]:
    """Quarantine records named by title (theirs, else the catalogue's, else the file name) and where they came from."""
    return [{
        "at": e.get("at"),
        "name": e.get("title") or titles.get(e.get("id") or "") or file_name(e.get("origin")),
        "source": SOURCE_WORDS.get(e.get("source") or "", ""),
        "reason": e.get("reason") or "没有通过检查",
        "reason_en": e.get("reason_en") or "",
    } for e in entries]
