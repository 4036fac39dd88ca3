"""Writes kiosk/library/pinyin_words.txt, the general dictionary of the on-screen pinyin keyboard.

Each line is `pinyin<TAB>word<TAB>frequency`, sorted by pinyin (toneless, ü as v, no spaces),
so the box finds every word for a typed prefix by binary search in the file, without loading it.
Words and their frequencies come from jieba's dictionary (MIT), common words only; readings
from pypinyin in context (a word's reading, all readings of a single character).

Run (both only for this script, not for the box): pip install jieba pypinyin; python tools/make_pinyin_words.py
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import jieba
from pypinyin import Style, lazy_pinyin, pinyin

MIN_WORD_FREQ = 100  # about 36,000 words of two to four characters: what a villager would type
HAN = re.compile(r"^[\u4e00-\u9fff]{1,4}$")
OUT = Path(__file__).resolve().parent.parent / "kiosk" / "library" / "pinyin_words.txt"


def simplified(word: str) -> bool:
    """Only simplified characters of the national standard set (GB 2312), which villagers read."""
    try:
        word.encode("gb2312")
        return True
    except UnicodeEncodeError:
        return False


def main() -> int:
    source = Path(os.path.dirname(jieba.__file__)) / "dict.txt"
    best: dict[tuple[str, str], int] = {}
    for line in source.read_text(encoding="utf-8").splitlines():
        word, freq, *_ = line.split()
        f = int(freq)
        if not HAN.match(word) or (len(word) > 1 and f < MIN_WORD_FREQ) or not simplified(word):
            continue
        if len(word) == 1:
            readings = [r for r in pinyin(word, style=Style.NORMAL, heteronym=True)[0] if r.isascii() and r.isalpha()]
            # the usual reading first; a rare one (英 as yang, 说 as yue) ranks far below
            keys = {r: f if i == 0 else f // 100 for i, r in enumerate(readings)}
        else:
            syl = lazy_pinyin(word, style=Style.NORMAL, errors="ignore")
            keys = {"".join(syl): f} if len(syl) == len(word) else {}
        for key, weight in keys.items():
            best[(key, word)] = max(weight, best.get((key, word), 0))
    lines = sorted(f"{k}\t{w}\t{f}" for (k, w), f in best.items())
    OUT.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{len(lines)} entries, {OUT.stat().st_size} bytes -> {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
