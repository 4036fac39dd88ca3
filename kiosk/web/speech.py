"""Read aloud (读一读): Mandarin with its tones, made on the box by espeak-ng, cached on disk.

No network: espeak-ng ships in Debian. Its `cmn` voice reads hanzi through its own
dictionary and speaks every tone digit it cannot place in English ("yang three zhu
one"), so the box never hands it hanzi: pypinyin turns the text into toned pinyin in
context (银行 yin2 hang2, tone sandhi as in 你好 ni2 hao3), and the `cmn-latn-pinyin`
voice speaks exactly those syllables. A package may bring its own recorded narration
instead (kiosk.json `narration`); the screens play that and never synthesise.

A long text is spoken in parts of a few sentences, so the first words come within a
second or two on a Pi and each WAV stays small (about 40 s, 2 MB); each part is cached in
a file named by the hash of voice and text, bounded by size, least recently used first.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import subprocess
import threading
import unicodedata
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from kiosk.library import pinyin

log = logging.getLogger(__name__)

MAX_CHARS = 8000  # an article of a few pages; a listener who wants more reads on
PART_CHARS = 160  # about 40 s of speech: quick to make, small to cache
MAX_ARTICLE_BYTES = 512 * 1024
CACHE_BYTES = 64 * 1024 * 1024
CHINESE_VOICE = "cmn-latn-pinyin"

_SYLLABLE = re.compile(r"^[a-z]+[1-5]$")
_STOPS = str.maketrans({"。": ".", "!": ".", "?": ".", ";": ",", "、": ",", ":": ",", "…": "."})  # after NFKC
_SENTENCE_END = re.compile(r"(?<=[。！？!?；;\n])")


class SpeechUnavailable(RuntimeError):
    """espeak-ng is missing or failed."""


def is_chinese(language: str) -> bool:
    """Whether a BCP 47 tag is read with the Mandarin voice (everything but English)."""
    return not language.lower().startswith("en")


def spoken_form(text: str, language: str = "zh-CN") -> str:
    """What espeak-ng is given: toned pinyin for Chinese, with pauses kept; the text itself for English."""
    if not is_chinese(language):
        return text
    out: list[str] = []
    for token in pinyin.spoken(text):
        if _SYLLABLE.match(token):
            out.append(token)
            continue
        # punctuation becomes a pause; digits stay (the pinyin voice reads them in
        # Mandarin); latin words are left for the voice, which reads them as pinyin letters
        plain = unicodedata.normalize("NFKC", token).translate(_STOPS)
        plain = "".join(c if c.isascii() and (c.isalnum() or c in ",. ") else " " for c in plain)
        out.append(plain)
    return " ".join(" ".join(out).split())


def parts(text: str, size: int = PART_CHARS) -> list[str]:
    """The text in parts of whole sentences, each at most about `size` characters."""
    text = text.strip()[:MAX_CHARS]
    out: list[str] = []
    current = ""
    for sentence in _SENTENCE_END.split(text):
        sentence = " ".join(sentence.split())
        while len(sentence) > size:  # one very long sentence: cut it
            if current:
                out.append(current)
                current = ""
            out.append(sentence[:size])
            sentence = sentence[size:]
        if current and len(current) + len(sentence) > size:
            out.append(current)
            current = ""
        current += sentence
    if current.strip():
        out.append(current)
    return out


class _TextOfHtml(HTMLParser):
    """The readable text of an HTML article, paragraphs ended with a full stop."""

    SKIP = {"script", "style", "head", "title", "noscript"}
    BLOCKS = {"p", "h1", "h2", "h3", "h4", "li", "div", "br", "tr", "section", "article"}

    def __init__(self) -> None:
        super().__init__()
        self.out: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in self.SKIP:
            self._skip += 1
        elif tag in self.BLOCKS:
            self.out.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP and self._skip:
            self._skip -= 1
        elif tag in self.BLOCKS:
            self.out.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.out.append(data)


def html_text(raw: bytes) -> str:
    """The words of an HTML article, one line per paragraph."""
    parser = _TextOfHtml()
    parser.feed(raw[:MAX_ARTICLE_BYTES].decode("utf-8", "replace"))
    lines = (" ".join(line.split()) for line in "".join(parser.out).split("\n"))
    return "\n".join(line if line[-1:] in "。！？.!?：:" else line + "。" for line in lines if line)


def item_text(library: Any, item: Any) -> str:
    """What 读一读 reads for an item: its title, its description, and an article's own text."""
    text = f"{item.title}。\n{item.description}"
    main = item.main_file
    if main is not None and main.media_type.startswith("text/html"):
        try:
            path, _ = library.media_path(item.id, item.version, main.path)
            text += "\n" + html_text(path.read_bytes())
        except Exception as e:  # the title and description are still worth hearing
            log.warning("event=article_text_failed id=%s error=%r", item.id, e)
    return text


class Speaker:
    """Turns text into cached WAV files."""

    def __init__(self, cache_dir: Path, program: str | None = None, cache_bytes: int = CACHE_BYTES) -> None:
        self.cache_dir = Path(cache_dir)
        self.program = program or shutil.which("espeak-ng") or "espeak-ng"
        self.cache_bytes = cache_bytes
        self._lock = threading.Lock()

    def voice(self, language: str) -> str:
        """The espeak-ng voice for a BCP 47 language tag."""
        return CHINESE_VOICE if is_chinese(language) else "en"

    def command(self, text: str, language: str, *output: str) -> list[str]:
        """The espeak-ng command that speaks `text` (`output`: -w FILE, or -q -x for phonemes)."""
        return [self.program, "-v", self.voice(language), "-s", "140", *output, "--", spoken_form(text, language)]

    def phonemes(self, text: str, language: str = "zh-CN") -> str:
        """espeak-ng's phonemes for `text` as the box would speak it (for checking, not for playing)."""
        try:
            done = subprocess.run(self.command(text, language, "-q", "-x"), check=True, capture_output=True, timeout=60, text=True)
        except (OSError, subprocess.SubprocessError) as e:
            raise SpeechUnavailable(str(e)) from e
        return done.stdout

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
                subprocess.run(self.command(text, language, "-w", str(tmp)), check=True, capture_output=True, timeout=60)
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
