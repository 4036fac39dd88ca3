"""What a file a villager or administrator brings may be: video, picture, audio or PDF, and whole.

The kind comes from the file's first bytes, not its name (a phone may name a video
anything); a video or audio file must also be one ffprobe can read with a stream and a
duration, since a file that does not play would only disappoint at the screen. Every
refusal carries a plain Chinese reason and its English.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from kiosk.errors import KioskError

FFPROBE_TIMEOUT_S = 60.0
KINDS = ("video", "picture", "audio", "pdf")


class MediaRefused(KioskError, ValueError):
    """A file that cannot become local content; `zh` says why in plain Chinese."""

    def __init__(self, zh: str, en: str) -> None:
        super().__init__(f"{zh} / {en}")
        self.zh = zh
        self.en = en


@dataclass(frozen=True)
class Checked:
    """A file that passed: its kind and a file name ending that matches it."""

    path: Path
    kind: str
    suffix: str


# (leading bytes, offset, kind, suffix); containers ffprobe then confirms
_MAGIC: tuple[tuple[bytes, int, str, str], ...] = (
    (b"%PDF-", 0, "pdf", ".pdf"),
    (b"\xff\xd8\xff", 0, "picture", ".jpg"),
    (b"\x89PNG\r\n\x1a\n", 0, "picture", ".png"),
    (b"GIF87a", 0, "picture", ".gif"),
    (b"GIF89a", 0, "picture", ".gif"),
    (b"ftyp", 4, "av", ".mp4"),
    (b"\x1a\x45\xdf\xa3", 0, "av", ".webm"),
    (b"ID3", 0, "av", ".mp3"),
    (b"OggS", 0, "av", ".ogg"),
    (b"fLaC", 0, "av", ".flac"),
)


def sniff(head: bytes) -> tuple[str, str] | None:
    """(kind, suffix) from a file's first bytes, "av" for containers of video or audio; None otherwise."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "picture", ".webp"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "av", ".wav"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "av", ".avi"
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:  # an MPEG audio frame without ID3
        return "av", ".mp3"
    for magic, offset, kind, suffix in _MAGIC:
        if head[offset:offset + len(magic)] == magic:
            return kind, suffix
    return None


def check_file(path: Path, max_bytes: int) -> Checked:
    """The file's kind, or MediaRefused saying plainly why it cannot be local content."""
    path = Path(path)
    name = path.name
    if not path.is_file():
        raise MediaRefused(f"找不到文件 {name}", f"{name} is not a file")
    size = path.stat().st_size
    if size == 0:
        raise MediaRefused(f"{name} 是空文件", f"{name} is empty")
    if size > max_bytes:
        raise MediaRefused(f"{name} 太大了（{size / 2**20:.0f} MB，上限 {max_bytes / 2**20:.0f} MB）",
                           f"{name} is {size / 2**20:.0f} MB, over the limit of {max_bytes / 2**20:.0f} MB")
    with open(path, "rb") as f:
        head = f.read(64)
    found = sniff(head)
    if found is None:
        raise MediaRefused(f"{name} 不是视频、图片、音频或 PDF 文件，不能添加",
                           f"{name} is not a video, picture, audio or PDF file")
    kind, suffix = found
    if kind == "av":
        kind, suffix = _probe(path, suffix)
    return Checked(path, kind, suffix)


def _probe(path: Path, suffix: str) -> tuple[str, str]:
    """("video" or "audio", suffix) when ffprobe reads a playable stream with a duration; else MediaRefused."""
    ffprobe = shutil.which("ffprobe")
    if ffprobe is None:
        raise KioskError("ffprobe is not installed (Debian package ffmpeg); videos cannot be checked")
    name = path.name
    cmd = [ffprobe, "-v", "error", "-show_entries", "stream=codec_type,codec_name:format=duration", "-of", "json", str(path)]
    try:
        done = subprocess.run(cmd, capture_output=True, timeout=FFPROBE_TIMEOUT_S, check=False)
        info = json.loads(done.stdout or b"{}")
    except (subprocess.TimeoutExpired, ValueError):
        info, done = {}, None
    streams = info.get("streams") or []
    types = {s.get("codec_type") for s in streams if s.get("codec_name")}
    try:
        duration = float((info.get("format") or {}).get("duration") or 0)
    except (TypeError, ValueError):
        duration = 0.0
    if done is None or done.returncode != 0 or not types & {"video", "audio"} or duration <= 0:
        raise MediaRefused(f"{name} 无法播放（文件可能不完整或已损坏），请换一个文件",
                           f"{name} does not play (it may be incomplete or damaged)")
    if "video" in types and any(s.get("codec_type") == "video" and s.get("codec_name") not in ("mjpeg", "png") for s in streams):
        return "video", suffix if suffix in (".mp4", ".webm", ".avi") else ".mp4"
    return "audio", suffix if suffix not in (".mp4", ".webm", ".avi") else ".m4a"
