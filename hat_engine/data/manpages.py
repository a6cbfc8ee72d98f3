"""Linux man pages: German pages of `manpages-de`/`manpages-de-dev` against the English pages of the same name
and section in `manpages`, `manpages-dev`, `coreutils`, `util-linux` and `systemd`.

A page is read as a sequence of units (headings, paragraphs, option tags) from its roff source; a page pairs
unit by unit only where both have the same sequence of unit kinds (DATA.md: ~700 pages match 1:1).
Code examples (`.nf`/`.EX` blocks) and the synopsis are left out.
"""

import gzip
import posixpath
import re
import zlib

from hat_engine.data.clean import Unit
from hat_engine.data.deb import DebFiles

SOURCE = "manpages"
GERMAN = ("manpages-de", "manpages-de-dev")
ENGLISH = ("manpages", "manpages-dev", "coreutils", "util-linux", "systemd")
PACKAGES = ENGLISH + GERMAN
SYNOPSIS = ("SYNOPSIS", "ÜBERSICHT")
EN_ROOT, DE_ROOT = "usr/share/man/man", "usr/share/man/de/man"

_PARAGRAPH = {"PP", "LP", "P", "sp", "br", "RS", "RE", "in", "ad", "na", "ne", "fi", "IP", "HP", "TP", "TQ"}
_FONT_MACROS = {"B", "I", "R", "SM", "SB", "BR", "RB", "BI", "IB", "IR", "RI"}
_ESCAPES = [
    (re.compile(r"\\f(\[[^\]]*\]|\(..|.)"), ""),  # font changes
    (re.compile(r"\\\*(\[[^\]]*\]|\(..|.)"), ""),  # string registers
    (re.compile(r"\\[,/&:%|^)]"), ""),
    (re.compile(r"\\\((em|en)"), "—"),
    (re.compile(r"\\\((lq|rq|dq)"), '"'),
    (re.compile(r"\\\((oq|cq|aq)"), "'"),
    (re.compile(r"\\\((Fo|Fc)"), '"'),
    (re.compile(r"\\\(bu"), "•"),
    (re.compile(r"\\\[(u?[0-9A-Fa-f]{4,5}|[a-z]+)\]"), ""),
    (re.compile(r"\\\(..|\\s[-+]?\d"), ""),
    (re.compile(r"\\[-e]"), lambda m: "-" if m.group() == r"\-" else "\\"),
    (re.compile(r"\\[ ~0]"), " "),
]


def want(path: str) -> bool:
    return path.startswith("usr/share/man/") and (path.startswith(EN_ROOT) or path.startswith(DE_ROOT))


def _text(line: str) -> str:
    for pattern, repl in _ESCAPES:
        line = pattern.sub(repl, line)
    return line


def _macro_args(rest: str) -> list[str]:
    return [a.strip('"') for a in re.findall(r'"[^"]*"|\S+', rest)]


def units(roff: str) -> list[tuple[str, str]]:
    """(kind, text) units of a man page: kind is "SH", "SS", "TAG" (an option's tag) or "P"."""
    out: list[tuple[str, str]] = []
    current: list[str] = []
    kind, skipping, tag_next = "P", False, False

    def flush() -> None:
        nonlocal current
        text = " ".join(" ".join(current).split())
        if text:
            out.append((kind, text))
        current = []

    section = ""
    for line in roff.splitlines():
        if line.startswith(('.\\"', "'\\\"", '\\"')):
            continue
        if line.startswith((".", "'")):
            name, _, rest = line[1:].strip().partition(" ")
            if name in ("nf", "EX"):
                flush()
                skipping = True
            elif name in ("fi", "EE"):
                skipping = False
                kind = "P"
            elif name in ("SH", "SS"):
                flush()
                section = " ".join(_macro_args(rest))
                current, kind = [_text(section)], name
                flush()
                kind = "P"
            elif name in ("TP", "TQ"):
                flush()
                tag_next = True
            elif name in _PARAGRAPH:
                flush()
                kind = "P"
            elif name in _FONT_MACROS and not skipping and section.upper() not in SYNOPSIS:
                args = _macro_args(rest)
                joined = "".join(args) if len(name) == 2 and name not in ("SM", "SB") else " ".join(args)
                current.append(_text(joined))
            continue
        if skipping or section.upper() in SYNOPSIS:
            continue
        if tag_next:
            flush()
            kind, current, tag_next = "TAG", [_text(line)], False
            flush()
            kind = "P"
            continue
        current.append(_text(line))
    flush()
    return out


def _page_name(path: str, root: str) -> str | None:
    """`man1/ls.1` of `usr/share/man/man1/ls.1.gz` (and of `usr/share/man/de/man1/ls.1.gz`)."""
    rest = path[len(root) - 3 :]
    return rest.removesuffix(".gz") if rest.count("/") == 1 else None


def _read(data: bytes) -> str | None:
    try:
        text = gzip.decompress(data).decode("utf-8", "replace")
    except (OSError, EOFError, zlib.error):
        return None
    return None if text.startswith(".so ") else text


def align(debs: dict[str, DebFiles]) -> list[Unit]:
    english: dict[str, bytes] = {}
    for package in ENGLISH:
        for path, data in debs[package].items():
            name = _page_name(path, EN_ROOT) if path.startswith(EN_ROOT) else None
            if name:
                english.setdefault(name, data)
    out = []
    for package in GERMAN:
        for path, data in sorted(debs[package].items()):
            name = _page_name(path, DE_ROOT) if path.startswith(DE_ROOT) else None
            if not name or name not in english:
                continue
            en_roff, de_roff = _read(english[name]), _read(data)
            if en_roff is None or de_roff is None:
                continue
            en_units, de_units = units(en_roff), units(de_roff)
            # manpages-de appends a section naming the translators
            cut = next((i for i, (k, t) in enumerate(de_units) if k == "SH" and t.upper() == "ÜBERSETZUNG"), None)
            de_units = de_units[:cut]
            if [k for k, _ in en_units] != [k for k, _ in de_units]:
                continue
            doc = posixpath.basename(name)
            out += [Unit(SOURCE, doc, e, d) for (_, e), (_, d) in zip(en_units, de_units, strict=True)]
    return out
