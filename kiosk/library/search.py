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

from kiosk.library import pinyin


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
            out.extend(pinyin.readings(run))
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


def document(title: str, description: str, tags: tuple[str, ...] | list[str], with_pinyin: bool = True) -> Document:
    """Index columns for an item: title, description+tags, pinyin, initials bigrams, initials.

    Without pinyin the pinyin columns stay empty (the catalogue fills them in later)."""
    body = " ".join([description[:DESCRIPTION_CHARS], *tags])
    pf: list[str] = []
    pi: list[str] = []
    pi1: list[str] = []
    for text in (title, *tags) if with_pinyin else ():
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


# Every toneless pinyin syllable (ü written v, as pypinyin's Style.NORMAL does), taken
# from pypinyin's dictionary once and kept here, so that searching never loads pypinyin
# (about 50 MB resident); interjections such as m, n, ng, hm are left out.
SYLLABLES = frozenset("""
    a ai an ang ao ba bai ban bang bao bei ben beng bi bian biang biao bie bin bing bo bong bu
    ca cai can cang cao ce cei cen ceng cha chai chan chang chao che chen cheng chi chong chou
    chu chua chuai chuan chuang chui chun chuo ci cong cou cu cuan cui cun cuo da dai dan dang
    dao de dei den deng di dia dian diao die din ding diu dong dou du duan dui dun duo e ei en
    eng er fa fan fang fei fen feng fiao fo fou fu ga gai gan gang gao ge gei gen geng gong gou
    gu gua guai guan guang gui gun guo ha hai han hang hao he hei hen heng hong hou hu hua huai
    huan huang hui hun huo ji jia jian jiang jiao jie jin jing jiong jiu ju juan jue jun ka kai
    kan kang kao ke kei ken keng kong kou ku kua kuai kuan kuang kui kun kuo la lai lan lang lao
    le lei len leng li lia lian liang liao lie lin ling liu lo long lou lu luan lun luo lv lve
    ma mai man mang mao me mei men meng mi mian miao mie min ming miu mo mou mu na nai nan nang
    nao ne nei nen neng ni nia nian niang niao nie nin ning niu nong nou nu nuan nun nuo nv nve
    o ou pa pai pan pang pao pei pen peng pi pian piao pie pin ping po pou pu qi qia qian qiang
    qiao qie qin qing qiong qiu qu quan que qun ran rang rao re ren reng ri rong rou ru rua ruan
    rui run ruo sa sai san sang sao se sen seng sha shai shan shang shao she shei shen sheng shi
    shou shu shua shuai shuan shuang shui shun shuo si song sou su suan sui sun suo ta tai tan
    tang tao te tei teng ti tian tiao tie ting tong tou tu tuan tui tun tuo wa wai wan wang wei
    wen weng wo wong wu xi xia xian xiang xiao xie xin xing xiong xiu xu xuan xue xun ya yan
    yang yao ye yi yin ying yo yong you yu yuan yue yun za zai zan zang zao ze zei zen zeng zha
    zhai zhan zhang zhao zhe zhei zhen zheng zhi zhong zhou zhu zhua zhuai zhuan zhuang zhui
    zhun zhuo zi zong zou zu zuan zui zun zuo
""".split())


def _syllable_set() -> frozenset[str]:
    return SYLLABLES


@functools.cache
def _syllable_prefixes() -> frozenset[str]:
    return frozenset(s[:i] for s in _syllable_set() for i in range(1, len(s) + 1))


def pinyin_splits(letters: str, limit: int = 4) -> list[tuple[list[str], bool]]:
    """Ways to read letters as pinyin syllables, longer syllables first ("xian" -> xian; xi an).

    The bool says the last syllable is unfinished (typed so far: "yangz" -> yang z*)."""
    syl, prefixes = _syllable_set(), _syllable_prefixes()
    out: list[tuple[list[str], bool]] = []
    dead: set[int] = set()  # positions from which no reading exists (keeps this linear-ish)

    def walk(i: int, acc: list[str]) -> None:
        if len(out) >= 2 * limit or i in dead:
            return
        before = len(out)
        if i == len(letters):
            out.append((acc, False))
            return
        for j in range(min(len(letters), i + 6), i, -1):
            if letters[i:j] in syl:
                walk(j, acc + [letters[i:j]])
        if letters[i:] in prefixes and letters[i:] not in syl:
            out.append((acc + [letters[i:]], True))
        if len(out) == before:
            dead.add(i)

    if len(letters) <= 40:
        walk(0, [])
    out.sort(key=lambda r: (r[1], len(r[0])))  # whole syllables first, then the fewest
    return out[:limit]


def split_pinyin(letters: str) -> tuple[list[str], bool] | None:
    """The first reading of letters as pinyin syllables ("yumi" -> yu mi), or None."""
    splits = pinyin_splits(letters, 1)
    return splits[0] if splits else None


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
        for syl, open_end in pinyin_splits(joined):
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
