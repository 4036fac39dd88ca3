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


def test_a_package_waits_for_no_dictionary_and_its_pinyin_follows_after_the_batch(cfg, tmp_path, monkeypatch):
    """While the box's pinyin child is still loading, an item is published at once, found by
    hanzi straight away and by pinyin once the batch's indexing ran."""
    from kiosk.library import Library
    from tests.packages import make_bag, trust_dir

    lib = Library(cfg.replace(storage__trust_dir=str(trust_dir(tmp_path))))
    try:
        monkeypatch.setattr(pinyin, "ready", lambda: False)  # the child's dictionary is not loaded yet
        monkeypatch.setattr(pinyin, "readings", lambda run: (_ for _ in ()).throw(AssertionError("waited for pinyin")))
        assert lib.ingest(make_bag(tmp_path)).outcome == "published"
        assert [i.id for i in lib.items(q="养猪")] == ["pig-farming"]
        assert lib.items(q="yz") == [] and lib.catalogue.pinyin_pending() == 1
        monkeypatch.undo()
        assert lib.index_pinyin() == 1
        assert [i.id for i in lib.items(q="yz")] == ["pig-farming"]
        assert [i.id for i in lib.items(q="yangzhu")] == ["pig-farming"]
        assert lib.catalogue.pinyin_pending() == 0
    finally:
        lib.close()


def test_the_ingest_command_reads_pinyin_in_a_child_and_never_loads_the_dictionary_itself(cfg_path, tmp_path):
    from tests.packages import make_bag, trust_dir

    bag = make_bag(tmp_path)
    code = ("import sys\nfrom kiosk import cli\nrc = cli.main(sys.argv[1:])\n"
            "print('pypinyin' in sys.modules)\nsys.exit(rc)\n")
    env = {**__import__("os").environ, "KIOSK_STORAGE_TRUST_DIR": str(trust_dir(tmp_path))}
    done = subprocess.run([sys.executable, "-c", code, "ingest", "--config", str(cfg_path), str(bag)],
                          capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "False"
