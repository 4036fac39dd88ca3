"""Pinyin readings of hanzi (for the search index and for reading aloud), here or in a short-lived child.

pypinyin needs its phrase dictionary to read words right (银行 is yin hang, 重庆 is
chong qing), and that dictionary costs about 50 MB resident once loaded, which Python
never gives back. A short command (`kiosk ingest`) does not care; the box's long-running
process must idle under 80 MB, so `kiosk run` calls `use_child_process()` and then its
occasional ingests ask one child process, which exits after a minute without work.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Callable

log = logging.getLogger(__name__)

IDLE_EXIT_S = 60.0

_lock = threading.Lock()
_in_child = False
_busy = 0  # readings under way in the child
_pool: ProcessPoolExecutor | None = None
_warm: Future[list[str]] | None = None  # the child's first reading: done once its dictionary is loaded
_timer: threading.Timer | None = None


def readings(run: str) -> list[str]:
    """The toneless syllables of a run of hanzi, each as pypinyin reads it in context."""
    return _ask(_read, run)


def spoken(text: str) -> list[str]:
    """`text` as toned pinyin to speak (yang3 zhu1), tone sandhi applied; other runs kept as they are."""
    return _ask(_speak, text)


def _ask(fn: Callable[[str], list[str]], text: str) -> list[str]:
    """fn(text), in the child when the box asked for one."""
    global _busy
    if not _in_child:
        return fn(text)
    with _lock:
        pool = _start()
        _busy += 1
    try:
        return pool.submit(fn, text).result(timeout=60)
    except Exception as e:  # a child that died is replaced next time; this text is read here
        log.warning("event=pinyin_child_failed error=%r", e)
        with _lock:
            _stop()
        return fn(text)
    finally:
        with _lock:
            _busy -= 1
            if _busy == 0 and _pool is pool:
                _arm_idle_timer()


def prepare() -> None:
    """Start loading the dictionary in the child now and return at once (no-op when reading here).

    An ingest calls this as soon as a package passed its signature check, so the child's
    start and the dictionary's load (about 1.3 s, one core) overlap the payload's hashing
    instead of coming before the first title."""
    global _busy, _warm
    with _lock:
        if not _in_child or _pool is not None:
            return
        pool = _start()
        _busy += 1

    def done(_: object) -> None:
        global _busy
        with _lock:
            _busy -= 1
            if _busy == 0 and _pool is pool:
                _arm_idle_timer()

    try:
        _warm = pool.submit(_read, "中")
        _warm.add_done_callback(done)
    except Exception as e:  # only a head start: the first reading starts the child again
        log.warning("event=pinyin_prepare_failed error=%r", e)
        with _lock:
            _busy -= 1
            _stop()


def ready() -> bool:
    """Whether a reading now answers at once: read here, or by a child whose dictionary is loaded."""
    with _lock:
        if not _in_child:
            return True
        return _pool is not None and _warm is not None and _warm.done()


def use_child_process(enabled: bool = True) -> None:
    """Read pinyin in a child process from now on (the box's long-running process)."""
    global _in_child
    with _lock:
        _in_child = enabled
        if not enabled:
            _stop()


def _read(run: str) -> list[str]:
    from pypinyin import Style, lazy_pinyin  # loaded only where indexing happens

    return [s for s in lazy_pinyin(run, style=Style.NORMAL, errors="ignore") if s.isascii() and s.isalpha()]


def _speak(text: str) -> list[str]:
    from pypinyin import Style, lazy_pinyin

    # neutral tones as 5 (espeak-ng's pinyin voice reads a bare syllable in its own way);
    # tone sandhi (你好 ni2 hao3, 一个 yi2 ge4, 不要 bu2 yao4) as a speaker says it
    return lazy_pinyin(text, style=Style.TONE3, tone_sandhi=True, neutral_tone_with_five=True, v_to_u=False)


def _exit_with_parent(parent: int) -> None:
    """In the child: leave as soon as the box is gone (after a SIGKILL nobody would stop us)."""

    def watch() -> None:  # the box may already be gone before this child got here
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, name="pinyin-parent-watch", daemon=True).start()


def _start() -> ProcessPoolExecutor:
    """The child, started if needed, with no idle timer running. Called with _lock held."""
    global _pool
    if _timer is not None:
        _timer.cancel()
    if _pool is None:
        _pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                    initializer=_exit_with_parent, initargs=(os.getpid(),))
    return _pool


def _arm_idle_timer() -> None:
    """Let the child go once it has had nothing to do for IDLE_EXIT_S. Called with _lock held."""
    global _timer
    _timer = threading.Timer(IDLE_EXIT_S, _idle_exit)
    _timer.daemon = True
    _timer.start()


def _idle_exit() -> None:
    with _lock:
        if _busy == 0:
            _stop()


def _stop() -> None:
    """Let the child exit (its memory goes with it). Called with _lock held."""
    global _pool, _timer, _warm
    if _timer is not None:
        _timer.cancel()
        _timer = None
    if _pool is not None:
        _pool.shutdown(wait=False, cancel_futures=True)
        _pool = None
    _warm = None
