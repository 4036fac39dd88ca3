"""读一读: Mandarin with its tones from espeak-ng's pinyin voice, the whole article, or a package's own recording."""

from __future__ import annotations

import io
import re
import wave
from pathlib import Path
from typing import Any

import pytest

from kiosk import config as config_mod
from kiosk.errors import PackageRejected
from kiosk.library import Library
from kiosk.library.record import parse_record
from kiosk.web import create_app, speech
from tests.packages import make_bag, record_bytes
from tests.webbox import write_config

KIOSK = {"REMOTE_ADDR": "127.0.0.1"}
SAMPLES = Path(__file__).resolve().parent.parent / "kiosk" / "sample_content"

# What espeak-ng shows when it leaves Mandarin: a switch to its English voice, English
# long vowels (i: u: 3:) and the English words for the tone digits.
ENGLISH = re.compile(r"\(en\)|[a-zA-Z@3]:|Tr'i:|w'0n|t'u:|f'o@|f'aIv|z'i@r|s'Ev")


def _sample_texts() -> list[str]:
    import json

    out = []
    for rec in sorted(SAMPLES.glob("*/kiosk.json")):
        r = json.loads(rec.read_text(encoding="utf-8"))
        out.append(f"{r['title']}。{r['description']}")
    return out


def test_the_box_gives_espeak_toned_pinyin_and_never_hanzi() -> None:
    said = speech.spoken_form("科学养猪：你好，一个人不要去。")
    assert said == "ke1 xue2 yang3 zhu1 , ni2 hao3 , yi2 ge4 ren2 bu2 yao4 qu4 ."  # tone sandhi as spoken
    assert not re.search(r"[^\x00-\x7f]", speech.spoken_form("2026年第3课：CCTV、高血压！"))


@pytest.mark.parametrize("text", ["养猪", "2026年3月第3课，每亩四千五百株。", "CCTV农业频道", *_sample_texts()])
def test_read_aloud_never_falls_back_to_english_phonemes(tmp_path: Path, text: str) -> None:
    phonemes = speech.Speaker(tmp_path).phonemes(text)
    assert phonemes.strip()
    assert ENGLISH.search(phonemes) is None, phonemes


def test_each_syllable_is_spoken_with_its_own_tone(tmp_path: Path) -> None:
    phonemes = speech.Speaker(tmp_path).phonemes("养猪")
    # yang3 falls-rises (21), zhu1 is high and level (55)
    assert re.search(r"j'iA21N", phonemes) and re.search(r"ts\.'u55", phonemes), phonemes


def test_a_long_text_is_spoken_in_parts_of_whole_sentences() -> None:
    text = "一二三四五六七八九十。" * 40
    got = speech.parts(text)
    assert len(got) > 1 and "".join(got) == text.strip()
    assert all(len(p) <= speech.PART_CHARS and p.endswith("。") for p in got)


@pytest.fixture
def library(tmp_path: Path) -> Any:
    from kiosk.demo import publish_samples

    cfg = config_mod.load(write_config(tmp_path), env={})
    lib = Library(cfg)
    publish_samples(cfg, lib, tmp_path / "work")
    yield lib
    lib.close()


@pytest.fixture
def client(library: Library) -> Any:
    return create_app(library.cfg, None, library=library).test_client()


def test_read_aloud_reads_the_article_not_only_the_title(client: Any, library: Library) -> None:
    plan = client.get("/speak/sample-corn-sowing", environ_base=KIOSK).get_json()
    assert plan["narration"] is None and plan["parts"] > 1
    text = speech.item_text(library, library.item("sample-corn-sowing"))
    assert text.startswith("玉米春播六要点。") and "深耕二十厘米以上" in text and "<p>" not in text
    last = client.get(f"/speak/sample-corn-sowing/{plan['parts'] - 1}", environ_base=KIOSK)
    assert last.status_code == 200 and last.data[:4] == b"RIFF"
    assert client.get(f"/speak/sample-corn-sowing/{plan['parts']}", environ_base=KIOSK).status_code == 404


def test_each_part_is_made_once_and_then_served_from_the_cache(client: Any) -> None:
    r = client.get("/speak/sample-pig-farming/0", environ_base=KIOSK)
    assert r.status_code == 200 and r.mimetype == "audio/wav" and len(r.data) > 10_000
    cache = client.application.extensions["kiosk"]["speech"].cache_dir
    assert len(list(cache.glob("*.wav"))) == 1
    assert client.get("/speak/sample-pig-farming/0", environ_base=KIOSK).data == r.data
    assert len(list(cache.glob("*.wav"))) == 1


def _wav() -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x00\x00" * 8000)
    return out.getvalue()


def test_a_package_with_its_own_narration_is_read_with_the_recording(client: Any, library: Library, tmp_path: Path) -> None:
    key = library.cfg.data_dir.parent / "work" / "publisher" / "demo-publisher.pem"
    bag = make_bag(tmp_path, files={"video.mp4": b"v" * 100, "voice/reading.wav": _wav()}, key=key,
                   record={"id": "narrated", "narration": "data/voice/reading.wav"})
    assert library.ingest(bag).outcome == "published"
    plan = client.get("/speak/narrated", environ_base=KIOSK).get_json()
    assert plan == {"narration": "/media/narrated/1/voice/reading.wav", "parts": 0}
    played = client.get(plan["narration"], environ_base=KIOSK)
    assert played.status_code == 200 and played.data[:4] == b"RIFF"


@pytest.mark.parametrize("narration", ["../etc/passwd", "/abs/voice.wav", "voice/reading.txt", 7])
def test_a_narration_that_is_not_a_plain_audio_path_is_a_bad_record(narration: Any) -> None:
    with pytest.raises(PackageRejected) as e:
        parse_record(record_bytes({"narration": narration}))
    assert e.value.reason == "bad_record" and "narration" in str(e.value)


def test_a_narration_missing_from_the_payload_is_rejected(library: Library, tmp_path: Path) -> None:
    key = library.cfg.data_dir.parent / "work" / "publisher" / "demo-publisher.pem"
    before = library.summary()
    bag = make_bag(tmp_path, key=key, record={"id": "mute", "narration": "voice/missing.wav"})
    out = library.ingest(bag)
    assert out.outcome == "rejected" and out.reason == "bad_record" and "narration" in out.detail
    assert library.summary()["items"] == before["items"]
