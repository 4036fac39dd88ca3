"""Search text: turn titles and queries into tokens an SQLite FTS5 index can match.

FTS5's own tokenizers do not segment Chinese, so text is pre-tokenised here and stored
space-separated (the unicode61 tokenizer then keeps each token whole). Every scheme is
an n-gram one, so that no query ever expands into thousands of index terms:

- t, d: hanzi runs as overlapping bigrams plus the run's last character (养猪技术 ->
  养猪 猪技 技术 术), latin words as words. Two characters are one token; a longer
  query is a phrase of bigrams; one character is a prefix query.
- pf: the pinyin syllables of the title and tags (pypinyin, the usual reading in
  context), one token each. ``yumi`` is split into syllables and searched as the phrase
  ``yu mi``; an unfinished last syllable is a prefix (``yangz`` -> ``yang z*``).
- pi: the syllables' initials as letter bigrams (yzjs -> yz zj js s), the same scheme
  as hanzi; pi1: the initials one by one, for a query of a single letter.

Ranking is by stages, each a cheap ``ORDER BY rowid DESC LIMIT`` query (see
Catalogue.search): titles that start with the query, then titles holding it, then
descriptions and tags; within a stage an exact title comes first, then the newest.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass

from pypinyin import Style, lazy_pinyin

DESCRIPTION_CHARS = 2000  # index the start of long descriptions only (keeps the index small)
MAX_QUERY = 60

_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_RUN = re.compile(f"([{_HAN}]+)|([a-z0-9]+)")


def normalise(text: str) -> str:
    """NFKC and lower case, so full-width letters and digits match their plain forms."""
    return unicodedata.normalize("NFKC", text or "").lower()


def _runs(text: str) -> list[tuple[str, str]]:
    """[("han", "养猪技术"), ("word", "cctv")] in reading order."""
    return [("han", m.group(1)) if m.group(1) else ("word", m.group(2)) for m in _RUN.finditer(normalise(text))]


def bigrams(run: str) -> list[str]:
    """Overlapping two-character tokens of a run, plus its last character."""
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


def title_pinyin(title: str) -> tuple[str, str]:
    """The whole title's pinyin joined, full and initials (used for ranking)."""
    syl = syllables(title)
    return "".join(syl), "".join(s[0] for s in syl)


@dataclass(frozen=True)
class Document:
    """The indexed columns of one item."""

    t: str
    d: str
    pf: str
    pi: str
    pi1: str


def document(title: str, description: str, tags: tuple[str, ...] | list[str]) -> Document:
    """Index columns for an item: title, description+tags, pinyin, initials bigrams, initials."""
    body = " ".join([description[:DESCRIPTION_CHARS], *tags])
    pf: list[str] = []
    pi: list[str] = []
    pi1: list[str] = []
    for text in (title, *tags):
        syl = syllables(text)
        ini = "".join(s[0] for s in syl)
        pf.extend(syl)
        pi.extend(bigrams(ini) if ini else [])
        pi1.extend(ini)
        # a separator keeps phrases from running from the title into a tag
        pf.append("0")
        pi.append("0")
        pi1.append("0")
    return Document(t=text_tokens(title), d=text_tokens(body), pf=" ".join(pf), pi=" ".join(pi), pi1=" ".join(pi1))


@functools.cache
def _syllable_set() -> frozenset[str]:
    """Every toneless pinyin syllable pypinyin knows (ü written v, as Style.NORMAL does)."""
    from pypinyin.pinyin_dict import pinyin_dict

    out = set()
    for value in pinyin_dict.values():
        for reading in value.split(","):
            plain = unicodedata.normalize("NFKD", reading).replace("u\u0308", "v")
            plain = "".join(c for c in plain if not unicodedata.combining(c))
            if plain.isascii() and plain.isalpha():
                out.add(plain)
    return frozenset(out)


@functools.cache
def _syllable_prefixes() -> frozenset[str]:
    return frozenset(s[:i] for s in _syllable_set() for i in range(1, len(s) + 1))


def split_pinyin(letters: str) -> tuple[list[str], bool] | None:
    """Letters as pinyin syllables, longest first ("yumi" -> yu mi); the bool says the last is unfinished."""
    syl, prefixes = _syllable_set(), _syllable_prefixes()
    out: list[str] = []
    i = 0
    while i < len(letters):
        for j in range(min(len(letters), i + 6), i, -1):
            if letters[i:j] in syl:
                out.append(letters[i:j])
                i = j
                break
        else:
            rest = letters[i:]
            if rest in prefixes:
                return out + [rest], True
            return None
    return out, False


def _quote(token: str) -> str:
    return '"' + token.replace('"', '""') + '"'


@dataclass(frozen=True)
class Query:
    """FTS5 MATCH expressions for the three ranking stages of one query (None: no match)."""

    start: str | None
    title: str | None
    anywhere: str | None


def _han_phrase(run: str, start: bool = False) -> str:
    if len(run) == 1:
        return ("^" if start else "") + f"{_quote(run)}*"
    return ("^" if start else "") + _quote(" ".join(bigrams(run)[:-1]))


def _latin(words: list[str], start: bool, title_only: bool) -> str:
    """English words, full pinyin or pinyin initials, for latin letters typed with or without spaces."""
    hat = "^" if start else ""
    text_cols = "t" if title_only else "{t d}"
    joined = "".join(words)
    if len(joined) == 1:
        # one letter: an initial only (as a word or a syllable prefix it would match half the index)
        return f"pi1 : {hat}{_quote(joined)}" if joined.isalpha() else f"t : {hat}{_quote(joined)}"
    alts = []
    if start:
        alts.append(f"t : {hat}{_quote(words[0])}*")
    else:
        alts.append(f"{text_cols} : (" + " AND ".join(f"{_quote(w)}*" for w in words) + ")")
    if joined.isalpha():
        split = split_pinyin(joined)
        if split:
            syl, open_end = split
            alts.append(f"pf : {hat}{_quote(' '.join(syl))}" + ("*" if open_end else ""))
        if len(words) == 1 and len(joined) <= 16:  # initials are typed without spaces
            alts.append(f"pi : {hat}{_quote(' '.join(bigrams(joined)[:-1]))}")
    return "(" + " OR ".join(alts) + ")"


def parse_query(q: str) -> Query:
    """The stages' MATCH expressions for a villager's query."""
    runs = _runs(q[:MAX_QUERY])
    if not runs:
        return Query(None, None, None)
    han = [r for k, r in runs if k == "han"]
    words = [r for k, r in runs if k == "word"]
    parts_title, parts_any = [], []
    for run in han:
        parts_title.append(f"t : {_han_phrase(run)}")
        parts_any.append(f"{{t d}} : {_han_phrase(run)}")
    if words:
        parts_title.append(_latin(words, start=False, title_only=True))
        parts_any.append(_latin(words, start=False, title_only=False))
    start = None
    if len(runs) == 1:
        start = f"t : {_han_phrase(han[0], start=True)}" if han else _latin(words, start=True, title_only=True)
    return Query(start, " AND ".join(parts_title), " AND ".join(parts_any))


def tier(q: str, title: str, title_py: str, title_ini: str) -> int:
    """0 exact title, 1 otherwise (within a stage an exact title goes first)."""
    nq = normalise(q).strip()
    compact = "".join(ch for ch in nq if not ch.isspace())
    return 0 if nq and (normalise(title).strip() == nq or compact in (title_py, title_ini)) else 1
