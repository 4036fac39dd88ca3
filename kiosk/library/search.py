"""Search text: turn titles and queries into tokens an SQLite FTS5 index can match.

FTS5's own tokenizers do not segment Chinese, so the text is pre-tokenised here and
stored space-separated (the default unicode61 tokenizer then keeps each token whole):

- hanzi runs become overlapping bigrams plus their last character, so any two
  characters of a title or description (养猪, 玉米) are one token and a longer query
  is a phrase of bigrams; a single character is a prefix query;
- the title's and tags' pinyin (pypinyin, the common reading in context) becomes
  suffix-joined tokens, full (``yumidefangfa``) and initials (``ymdff``), so a prefix
  query finds a run of syllables anywhere in the title (``yumi``, ``yz``);
- latin words are kept as words for English.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from pypinyin import Style, lazy_pinyin

# Longest run of syllables joined into one pinyin token; a query longer than this
# is still found through its first MAX_SYLLABLES syllables (then re-ranked).
MAX_SYLLABLES = 10
DESCRIPTION_CHARS = 2000  # index the start of long descriptions only (keeps the index small)

_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_RUN = re.compile(f"([{_HAN}]+)|([a-z0-9]+)")


def normalise(text: str) -> str:
    """NFKC and lower case, so full-width letters and digits match their plain forms."""
    return unicodedata.normalize("NFKC", text or "").lower()


def _runs(text: str) -> list[tuple[str, str]]:
    """[("han", "养猪技术"), ("word", "cctv")] in reading order."""
    out = []
    for m in _RUN.finditer(normalise(text)):
        out.append(("han", m.group(1)) if m.group(1) else ("word", m.group(2)))
    return out


def bigrams(run: str) -> list[str]:
    """Overlapping two-character tokens of a hanzi run, plus its last character."""
    if len(run) == 1:
        return [run]
    return [run[i : i + 2] for i in range(len(run) - 1)] + [run[-1]]


def text_tokens(text: str) -> str:
    """Bigrams and words of a text, space-separated, for the t and d columns."""
    toks: list[str] = []
    for kind, run in _runs(text):
        toks.extend(bigrams(run) if kind == "han" else [run])
    return " ".join(toks)


def syllables(text: str) -> list[str]:
    """The text's pinyin syllables (latin words kept as they are), in order."""
    out: list[str] = []
    for kind, run in _runs(text):
        if kind == "han":
            out.extend(s for s in lazy_pinyin(run, style=Style.NORMAL, errors="ignore") if s.isascii() and s.isalpha())
        else:
            out.append(run)
    return out


def _suffixes(parts: list[str]) -> list[str]:
    return ["".join(parts[i : i + MAX_SYLLABLES]) for i in range(len(parts))]


def pinyin_tokens(*texts: str) -> tuple[str, str]:
    """(full, initials) suffix-joined pinyin tokens of each text, space-separated."""
    full: list[str] = []
    ini: list[str] = []
    for text in texts:
        syl = syllables(text)
        full.extend(_suffixes(syl))
        ini.extend(_suffixes([s[0] for s in syl]))
    return " ".join(dict.fromkeys(full)), " ".join(dict.fromkeys(ini))


def title_pinyin(title: str) -> tuple[str, str]:
    """The whole title's pinyin joined, full and initials (used for ranking)."""
    syl = syllables(title)
    return "".join(syl), "".join(s[0] for s in syl)


@dataclass(frozen=True)
class Document:
    """The four indexed columns of one item."""

    t: str
    d: str
    pf: str
    pi: str


def document(title: str, description: str, tags: tuple[str, ...] | list[str]) -> Document:
    """Index columns for an item: title, description+tags, pinyin full, pinyin initials."""
    body = " ".join([description[:DESCRIPTION_CHARS], *tags])
    pf, pi = pinyin_tokens(title, *tags)
    return Document(t=text_tokens(title), d=text_tokens(body), pf=pf, pi=pi)


def _quote(token: str) -> str:
    return '"' + token.replace('"', '""') + '"'


def match_expression(q: str) -> str | None:
    """An FTS5 MATCH expression for a villager's query, or None when it holds nothing searchable."""
    parts: list[str] = []
    words: list[str] = []
    for kind, run in _runs(q):
        if kind == "han":
            grams = bigrams(run)[:-1] if len(run) > 1 else []
            parts.append("{t d} : " + (f"{_quote(run)}*" if len(run) == 1 else _quote(" ".join(grams))))
        else:
            words.append(run)
    if words:
        # Latin letters: English words in the text, or pinyin (full or initials) of the
        # title, typed with or without spaces ("yu mi", "yumi", "ym").
        joined = "".join(words)[: 6 * MAX_SYLLABLES]
        as_words = " AND ".join(f"{_quote(w)}*" for w in words)
        parts.append(f"(({{t d}} : ({as_words})) OR ({{pf pi}} : {_quote(joined)}*))")
    if not parts:
        return None
    return " AND ".join(parts)


def tier(q: str, title: str, title_py: str, title_ini: str) -> int:
    """0 exact title, 1 title starts with it, 2 in the title, 3 elsewhere (lower ranks first)."""
    nq = normalise(q)
    compact = "".join(ch for ch in nq if not ch.isspace())
    t = normalise(title)
    if nq and (t == nq or compact in (title_py, title_ini)):
        return 0
    if nq and (t.startswith(nq) or (compact.isascii() and (title_py.startswith(compact) or title_ini.startswith(compact)))):
        return 1
    if nq and (nq in t or (compact.isascii() and (compact in title_py or compact in title_ini))):
        return 2
    return 3
