"""The cleaning every modern (Debian archive) source goes through, in one place (DATA.md, "Cleaning that worked").

An aligner yields raw `Unit`s: an English and a German text block from the same document. `clean_units` turns
them into sentence pairs worth training on and counts, per reason, what it dropped.
"""

import re
from collections import Counter
from dataclasses import dataclass

from hat_engine.data.text import normalise

MAX_WORDS = 60
MIN_WORD_RATIO, MAX_WORD_RATIO = 0.5, 2.0
PUNCT_CHECK_WORDS = 4  # units of this many words or more must end with the same kind of punctuation

_TAGS = re.compile(r"<[^<>]{1,200}>")
_SPACES = re.compile(r"\s+")
# `&File`, `_File`, `Fi&le`, and the CJK-style `(_F)` / `(&F)` accelerators of UI catalogs.
_ACCEL_PAREN = re.compile(r"\s*\([&_]\w\)")
_ACCEL = re.compile(r"(?<!&)[&_](?=\w)")
_PLACEHOLDER = re.compile(r"%[<>]|%(\d+\$)?[-+#0]*\d*(\.\d+)?[A-Za-z%]|%\d+|\{\w*\}|\$\{?[A-Za-z_]\w*|\\n|\\t")
_URL_OR_PATH = re.compile(r"://|\bwww\.|(?<![\w.])(/[\w.-]+){2,}|~/|(?<=\w)\.(html?|xml|conf|cfg|txt|so|py)\b")
_WORD = re.compile(r"[A-Za-zÄÖÜäöüß]+")
_EN_WORDS = frozenset("the and of to is are with for this that you your be can from which it not by or an".split())
_DE_WORDS = frozenset(
    "der die das und ist sind mit für nicht ein eine zu den von sie werden wird auf im dem des".split()
)
# A sentence ends at . ! ? after a word of 3+ letters (not "z. B.", "e.g.", "Nr.") before a capital letter.
_SENTENCE_END = re.compile(r"(?<=[^\W\d_]{3}[.!?])\s+(?=[\"„“»(]?[A-ZÄÖÜ])|(?<=[.!?][\"”“«)])\s+(?=[A-ZÄÖÜ])")
_FINAL = {".": ".", "!": "!", "?": "?", ":": ":", ";": ";", "…": "."}


@dataclass(frozen=True)
class Unit:
    """One aligned text block: English and German of the same place in one document of one source."""

    source: str
    doc: str  # the page, man page, package or catalog it comes from: the unit of the valid/test split
    en: str
    de: str


def strip_markup(text: str, ui: bool = False) -> str:
    """Whitespace normalised, leftover tags removed; keyboard accelerators too for UI strings."""
    text = _TAGS.sub("", text)
    if ui:
        text = _ACCEL.sub("", _ACCEL_PAREN.sub("", text))
    return _SPACES.sub(" ", text).strip()


def sentences(text: str) -> list[str]:
    """`text` split into sentences (conservatively: a doubtful boundary is not split)."""
    return [s for s in _SENTENCE_END.split(text) if s.strip()]


def split_sentences(unit: "Unit") -> list["Unit"]:
    """A paragraph as sentence pairs when both sides have the same number of sentences; else as it is."""
    en, de = sentences(unit.en), sentences(unit.de)
    if len(en) < 2 or len(en) != len(de):
        return [unit]
    return [Unit(unit.source, unit.doc, e, d) for e, d in zip(en, de, strict=True)]


def still_english(de: str) -> bool:
    """German text that is (mostly) untranslated English: more English function words than German ones."""
    words = [w.casefold() for w in _WORD.findall(de)]
    english = sum(w in _EN_WORDS for w in words)
    return english >= 2 and english > 2 * sum(w in _DE_WORDS for w in words)


def _final(text: str) -> str:
    return _FINAL.get(text[-1:], "")


def reject_reason(en: str, de: str, keys: tuple[str, str] | None = None) -> str | None:
    """Why a cleaned (English, German) pair is not kept, or None. `keys`: their `normalise`d forms, if known."""
    if not en or not de:
        return "empty"
    if _PLACEHOLDER.search(en) or _PLACEHOLDER.search(de):
        return "placeholder"
    if _URL_OR_PATH.search(en) or _URL_OR_PATH.search(de):
        return "url_or_path"
    key_en, key_de = keys or (normalise(en), normalise(de))
    if key_en == key_de:
        return "untranslated"
    if still_english(de):
        return "still_english"
    n_en, n_de = len(en.split()), len(de.split())
    if max(n_en, n_de) > MAX_WORDS:
        return "too_many_words"
    if not MIN_WORD_RATIO <= n_en / n_de <= MAX_WORD_RATIO:
        return "word_ratio"
    if not _WORD.search(en):
        return "no_words"
    if min(n_en, n_de) >= PUNCT_CHECK_WORDS and _final(en) != _final(de):
        return "final_punctuation"
    return None


def clean_units(units: list[Unit], dropped: Counter, ui: bool = False) -> list[Unit]:
    """Strip markup, split prose into sentences, drop what `reject_reason` rejects, dedupe on pair and English.

    UI strings (`ui`) lose their keyboard accelerators and are not split.

    `dropped` counts each reason ("duplicate_pair", "duplicate_english" for the dedupes). The first unit of a
    duplicate is kept, so the outcome depends only on the aligner's (deterministic) order.
    """
    out, pairs, english = [], set(), set()
    stripped = (Unit(u.source, u.doc, strip_markup(u.en, ui), strip_markup(u.de, ui)) for u in units)
    for unit in stripped if ui else (s for u in stripped for s in split_sentences(u)):
        en, de = unit.en, unit.de
        key = (normalise(en), normalise(de))
        reason = reject_reason(en, de, key)
        if reason is None:
            reason = "duplicate_pair" if key in pairs else "duplicate_english" if key[0] in english else None
            pairs.add(key)
            english.add(key[0])
        if reason is not None:
            dropped[reason] += 1
            continue
        out.append(Unit(unit.source, unit.doc, en, de))
    return out
