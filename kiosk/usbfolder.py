"""A folder on a disk someone else prepared (a USB disk carried between box and centre).

Nothing in it is followed. Every read and write goes through the folder's descriptor
(opened O_NOFOLLOW); reads take regular files only, up to a size; writes go into a fresh
temporary file made with O_EXCL | O_NOFOLLOW, then renamed over the name, so a planted
link (at the name, at a temporary name, or the folder itself) is never read or written
through. Used by `kiosk uplink export` on the box and `kiosk centre import` at the centre.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import stat
from pathlib import Path

from kiosk.errors import KioskError

_NOFOLLOW = os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


def open_folder(folder: Path | str, dir_fd: int | None = None) -> int:
    """The folder's descriptor (`folder` inside `dir_fd`, when given); KioskError when it is a link or not a folder."""
    try:
        return os.open(folder, os.O_RDONLY | os.O_DIRECTORY | _NOFOLLOW, dir_fd=dir_fd)
    except OSError as e:
        raise KioskError(f"{folder} is not a plain folder (a link?): {e.strerror}") from None


def names(dir_fd: int, suffix: str) -> list[str]:
    """The names in the folder that end with `suffix`, sorted (what they are is checked on reading)."""
    return sorted(n for n in os.listdir(dir_fd) if n.endswith(suffix) and not n.startswith("."))


def read(dir_fd: int, name: str, limit: int | None = None) -> bytes | None:
    """A regular file's bytes in the folder, or None (absent, a link, a device, or over `limit` bytes)."""
    try:
        fd = os.open(name, os.O_RDONLY | _NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)  # a FIFO must not block
    except OSError:
        return None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or (limit is not None and st.st_size > limit):
        os.close(fd)
        return None
    with os.fdopen(fd, "rb") as f:
        data = f.read() if limit is None else f.read(limit + 1)
        return None if limit is not None and len(data) > limit else data


def write_atomically(dir_fd: int, name: str, data: bytes | Path) -> None:
    """Write `data` (bytes, or the contents of a file, streamed) under `name` in the folder."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW
    while True:
        tmp = f".{name}.{secrets.token_hex(6)}.tmp"
        try:
            fd = os.open(tmp, flags, 0o644, dir_fd=dir_fd)
            break
        except FileExistsError:
            continue  # someone's file or link has that name: pick another
    try:
        with os.fdopen(fd, "wb") as f:
            if isinstance(data, Path):
                with open(data, "rb") as src:
                    shutil.copyfileobj(src, f, 1 << 20)
            else:
                f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)  # replaces a link, never follows it
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise
