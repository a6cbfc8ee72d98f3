"""The modern sources of the corpus (DATA.md, "Modern sources"): Debian packages aligned per source, cleaned
in one place (`clean.py`), deduplicated across sources and split by document.

The Debian Reference (`debian-reference-*`) is this project's external evaluation set: no package list may name
it, a local .deb of that name is ignored, and its DDTP description is left out.
"""

import hashlib
import logging
from collections import Counter
from pathlib import Path

from hat_engine.data import catalogs, ddtp, gimp, gnome_help, handbook, libreoffice, manpages, manuals
from hat_engine.data.clean import Unit, clean_units
from hat_engine.data.deb import read_deb
from hat_engine.data.text import normalise
from hat_engine.errors import DataError

log = logging.getLogger(__name__)

RESERVED_PREFIX = "debian-reference"
# The aligners of the Debian-package sources, in the order cross-source deduplication prefers them.
DEB_SOURCES = {m.SOURCE: m for m in (libreoffice, manpages, gimp, handbook, gnome_help, manuals, catalogs)}
MODERN_SOURCES = ("libreoffice", "manpages", "ddtp", "gimp", "handbook", "gnome_help", "manuals", "ui")
UI_SOURCES = frozenset({"ui"})  # short UI strings: their own train split, never in valid or test
HELD_OUT_FRACTION = 0.02  # of each prose source's documents, for valid and again for test
MODERN_SPLIT_RULE = (
    "modern: by document; per prose source, documents ranked by sha256(f'{seed}:{source}:{doc}'), the first "
    "max(1, round(2 % of documents)) -> valid, the next as many -> test, the rest train; UI strings train only"
)


def reserved(package: str) -> bool:
    return package.startswith(RESERVED_PREFIX)


def check_packages(packages: list[str] | tuple[str, ...]) -> None:
    """Refuse a package list that names the reserved Debian Reference."""
    bad = [p for p in packages if reserved(p)]
    if bad:
        raise DataError(f"{bad}: the Debian Reference is reserved for evaluation and never enters the corpus")


def packages(sources: tuple[str, ...]) -> list[str]:
    """The Debian packages the chosen sources read (DDTP reads the archive's Translation files instead)."""
    out = [p for name in sources if name in DEB_SOURCES for p in DEB_SOURCES[name].PACKAGES]
    check_packages(out)
    return out


def source_units(name: str, debs: dict[str, Path], ddtp_files: list[Path]) -> list[Unit]:
    """The raw aligned units of one modern source."""
    if name == "ddtp":
        english: dict[str, tuple[str, str]] = {}
        german: dict[str, tuple[str, str]] = {}
        for path in sorted(ddtp_files):
            language = "de" if path.name.endswith("Translation-de") else "en"
            table = german if language == "de" else english
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
            except OSError as exc:
                raise DataError(f"cannot read {path}: {exc}") from exc
            for md5, entry in ddtp.parse_translation(text, language).items():
                table.setdefault(md5, entry)
        return ddtp.align(english, german, reserved)
    module = DEB_SOURCES[name]
    check_packages(module.PACKAGES)
    files = {package: read_deb(debs[package], module.want) for package in module.PACKAGES}
    return module.align(files)


def clean_sources(raw: dict[str, list[Unit]], stats: dict[str, dict]) -> dict[str, list[Unit]]:
    """Per-source cleaning, then cross-source deduplication on the English side (earlier sources win)."""
    seen: set[str] = set()
    out = {}
    for name in MODERN_SOURCES:
        if name not in raw:
            continue
        dropped: Counter = Counter()
        units = clean_units(raw[name], dropped, ui=name in UI_SOURCES)
        kept = []
        for unit in units:
            key = normalise(unit.en)
            if key in seen:
                dropped["duplicate_across_sources"] += 1
                continue
            seen.add(key)
            kept.append(unit)
        out[name] = kept
        stats[name] = {
            "units": len(raw[name]),
            "documents": len({u.doc for u in raw[name]}),
            "pairs": len(kept),
            "dropped": dict(sorted(dropped.items())),
        }
    return out


def _rank(seed: int, source: str, doc: str) -> str:
    return hashlib.sha256(f"{seed}:{source}:{doc}".encode()).hexdigest()


def document_split(units: dict[str, list[Unit]], seed: int) -> dict[str, list[Unit]]:
    """ "train", "ui_train", "valid", "test": whole documents held out, stratified by source.

    Held-out units are ordered by their document's rank, so any prefix of valid or test mixes the sources.
    """
    parts: dict[str, list[Unit]] = {"train": [], "ui_train": [], "valid": [], "test": []}
    for name, source_units_ in units.items():
        if name in UI_SOURCES:
            parts["ui_train"] += source_units_
            continue
        docs = sorted({u.doc for u in source_units_}, key=lambda d: _rank(seed, name, d))
        n = max(1, round(HELD_OUT_FRACTION * len(docs))) if len(docs) >= 3 else 0
        role = {d: "valid" for d in docs[:n]} | {d: "test" for d in docs[n : 2 * n]}
        for unit in source_units_:
            parts[role.get(unit.doc, "train")].append(unit)
    for part in ("valid", "test"):
        parts[part].sort(key=lambda u: _rank(seed, u.source, u.doc))  # stable: document order kept
    return parts


def ignored_reserved(debs_dir: Path) -> list[str]:
    """Files of `debs_dir` named like the reserved Debian Reference: they are never read."""
    names = sorted(p.name for p in Path(debs_dir).glob(f"{RESERVED_PREFIX}*"))
    for name in names:
        log.warning("%s: ignored, the Debian Reference is reserved for evaluation", debs_dir / name)
    return names
