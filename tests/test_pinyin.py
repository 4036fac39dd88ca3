"""Pinyin for the index: the same readings whether read here or in the box's child process."""

import subprocess
import sys

from kiosk.library import pinyin


def test_words_are_read_in_context():
    assert pinyin.readings("重庆银行") == ["chong", "qing", "yin", "hang"]


def test_a_child_process_reads_the_same_and_this_process_never_loads_pypinyin():
    code = (
        "import sys\n"
        "from kiosk.library import pinyin\n"
        "pinyin.use_child_process()\n"
        "print(' '.join(pinyin.readings('科学养猪')))\n"
        "print('pypinyin' in sys.modules)\n"
        "pinyin.use_child_process(False)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True).stdout
    assert out.split("\n")[:2] == ["ke xue yang zhu", "False"]


def test_the_child_exits_when_idle_and_a_later_reading_starts_a_new_one(monkeypatch):
    monkeypatch.setattr(pinyin, "IDLE_EXIT_S", 0.2)
    pinyin.use_child_process()
    try:
        assert pinyin.readings("玉米") == ["yu", "mi"]
        first = pinyin._pool
        assert first is not None
        import time

        deadline = time.monotonic() + 10
        while pinyin._pool is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pinyin._pool is None
        assert pinyin.readings("小麦") == ["xiao", "mai"]
        assert pinyin._pool is not None and pinyin._pool is not first
    finally:
        pinyin.use_child_process(False)
    assert pinyin._pool is None
