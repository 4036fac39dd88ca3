"""Hanzi from typed pinyin, for a touchscreen without a hardware keyboard or an input method.

Candidates come from the catalogue's own words first (its titles and tags: what this box
can actually show), then from a general dictionary shipped with the box,
pinyin_words.txt (tools/make_pinyin_words.py writes it: 46,000 common words and every
character, sorted by pinyin). The file is searched by bisection through mmap rather than
loaded: as a dict it would keep about 8 MB resident in a process that must idle under 80 MB.

`to_hanzi` is the same choice made without a villager: a request typed as letters and sent
without picking a candidate is stored as the best hanzi match, never as raw letters.
"""

from __future__ import annotations

import mmap
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from kiosk.library import pinyin

DICTIONARY = Path(__file__).resolve().parent / "pinyin_words.txt"
MAX_LETTERS = 40
MAX_WORD = 12  # a catalogue word longer than this is a sentence, not something typed
_HAN_RUN = re.compile(r"[\u4e00-\u9fff]{2,}")
SCAN = 4000  # dictionary lines looked at for one prefix (a single letter matches thousands)
_LETTERS = re.compile(r"[a-zü]+")

# (letters typed, how many wanted) -> catalogue words whose pinyin or initials start with them
CatalogueWords = Callable[[str, int], list[tuple[str, str]]]


@dataclass(frozen=True)
class Candidate:
    """A word to offer and how many of the typed letters it stands for."""

    word: str
    used: int

    def to_json(self) -> dict[str, object]:
        return {"w": self.word, "n": self.used}


class _Dictionary:
    """pinyin_words.txt, opened once and read by bisection through mmap (nothing held but the map)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._map: mmap.mmap | None = None
        self._lock = threading.Lock()

    def _data(self) -> mmap.mmap:
        with self._lock:
            if self._map is None:
                with open(self.path, "rb") as f:
                    self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            return self._map

    def _line_at(self, data: mmap.mmap, pos: int) -> tuple[int, int]:
        """The start and end of the line that holds byte `pos`."""
        start = data.rfind(b"\n", 0, pos) + 1
        end = data.find(b"\n", pos)
        return start, len(data) if end < 0 else end

    def starting_with(self, prefix: str) -> list[tuple[str, str, int]]:
        """(pinyin, word, frequency) of entries whose pinyin starts with `prefix`, at most SCAN of them."""
        data = self._data()
        key = prefix.encode("ascii")
        lo, hi = 0, len(data)
        while lo < hi:  # the first line whose pinyin is >= prefix
            mid = (lo + hi) // 2
            start, end = self._line_at(data, mid)
            if data[start:end].split(b"\t", 1)[0] < key:
                lo = end + 1
            else:
                hi = start
        out: list[tuple[str, str, int]] = []
        pos = lo
        while pos < len(data) and len(out) < SCAN:
            end = data.find(b"\n", pos)
            end = len(data) if end < 0 else end
            py, word, freq = data[pos:end].decode("utf-8").split("\t")
            if not py.startswith(prefix):
                break
            out.append((py, word, int(freq)))
            pos = end + 1
        return out


_dictionary = _Dictionary(DICTIONARY)


def words_of(title: str, tags: Iterable[str]) -> list[tuple[str, str, str]]:
    """(word, pinyin, initials) of an item's tags and the hanzi runs of its title, for the catalogue's words table."""
    out: list[tuple[str, str, str]] = []
    seen: set[str] = set()
    for text in (*tags, title):
        for word in _HAN_RUN.findall(text):
            if word in seen or len(word) > MAX_WORD:
                continue
            seen.add(word)
            syl = pinyin.readings(word)
            if len(syl) == len(word):  # one syllable a character, or the letters would not line up
                out.append((word, "".join(syl), "".join(x[0] for x in syl)))
    return out


def _letters(text: str) -> str:
    return "".join(_LETTERS.findall(text.lower().replace("ü", "v")))[:MAX_LETTERS]


def candidates(typed: str, catalogue_words: CatalogueWords | None = None, limit: int = 16) -> list[Candidate]:
    """Words for typed pinyin: the catalogue's first, then whole-word matches, then the first syllables' words."""
    letters = _letters(typed)
    if not letters:
        return []
    seen: set[str] = set()
    out: list[Candidate] = []

    def offer(word: str, used: int) -> None:
        if word not in seen and len(out) < limit:
            seen.add(word)
            out.append(Candidate(word, used))

    for word, _ in (catalogue_words(letters, limit) if catalogue_words else []):
        offer(word, len(letters))
    entries = _dictionary.starting_with(letters)
    exact = sorted((e for e in entries if e[0] == letters), key=lambda e: -e[2])
    longer = sorted((e for e in entries if e[0] != letters), key=lambda e: (-e[2]))
    for _, word, _ in exact:
        offer(word, len(letters))
    for _, word, _ in longer[: max(0, limit // 2)]:  # yangz: 养殖, 样子 while the syllable is unfinished
        offer(word, len(letters))
    # The longest start of the letters that is a word or a syllable: 养猪 of yangzhujishu.
    for cut in range(len(letters) - 1, 0, -1):
        if len(out) >= limit:
            break
        head = sorted((e for e in _dictionary.starting_with(letters[:cut]) if e[0] == letters[:cut]), key=lambda e: -e[2])
        for _, word, _ in head:
            offer(word, cut)
        if head:
            break
    return out


def to_hanzi(text: str, catalogue_words: CatalogueWords | None = None) -> str | None:
    """`text` with every run of latin letters turned into hanzi (the best candidate, word after word).

    None when some letters are no pinyin at all: the caller asks the villager to pick instead.
    """
    failed = False

    def convert(m: re.Match[str]) -> str:
        nonlocal failed
        letters, out = m.group(0).lower(), []
        while letters:
            found = candidates(letters, catalogue_words, limit=1)
            if not found:
                failed = True
                return m.group(0)
            out.append(found[0].word)
            letters = letters[found[0].used:]
        return "".join(out)

    converted = re.sub(r"[A-Za-zü]+", convert, text)
    return None if failed else converted
