"""Read aloud (读一读): espeak-ng's Mandarin voice, made on the box, cached on disk.

No network: espeak-ng ships in Debian with the `cmn` voice. Each text is spoken
once into a WAV file named by the hash of voice and text; the cache is bounded
by size, least recently used first.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import threading
from pathlib import Path

log = logging.getLogger(__name__)

MAX_CHARS = 600  # a title and a description; more is not what a listener waits for
CACHE_BYTES = 64 * 1024 * 1024


class SpeechUnavailable(RuntimeError):
    """espeak-ng is missing or failed."""


class Speaker:
    """Turns text into a cached WAV file."""

    def __init__(self, cache_dir: Path, program: str | None = None, cache_bytes: int = CACHE_BYTES) -> None:
        self.cache_dir = Path(cache_dir)
        self.program = program or shutil.which("espeak-ng") or "espeak-ng"
        self.cache_bytes = cache_bytes
        self._lock = threading.Lock()

    def voice(self, language: str) -> str:
        """The espeak-ng voice for a BCP 47 language tag."""
        return "en" if language.lower().startswith("en") else "cmn"

    def wav(self, text: str, language: str = "zh-CN") -> Path:
        """The WAV file speaking `text`, made now if not cached."""
        text = " ".join(text.split())[:MAX_CHARS]
        voice = self.voice(language)
        key = hashlib.sha256(f"{voice}\n{text}".encode("utf-8")).hexdigest()[:32]
        path = self.cache_dir / f"{key}.wav"
        if path.exists():
            os.utime(path)  # recently used: keep it longer
            return path
        with self._lock:
            if path.exists():
                return path
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            try:
                subprocess.run(
                    [self.program, "-v", voice, "-s", "140", "-w", str(tmp), "--", text],
                    check=True, capture_output=True, timeout=60,
                )
            except (OSError, subprocess.SubprocessError) as e:
                tmp.unlink(missing_ok=True)
                log.warning("event=speech_failed voice=%s error=%r", voice, e)
                raise SpeechUnavailable(str(e)) from e
            os.replace(tmp, path)
            self._trim()
            log.info("event=speech_made voice=%s chars=%d bytes=%d", voice, len(text), path.stat().st_size)
        return path

    def _trim(self) -> None:
        """Drop the least recently used files beyond the cache's size."""
        files = sorted(self.cache_dir.glob("*.wav"), key=lambda p: p.stat().st_mtime, reverse=True)
        total = 0
        for p in files:
            total += p.stat().st_size
            if total > self.cache_bytes:
                p.unlink(missing_ok=True)
