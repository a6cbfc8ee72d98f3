"""Text cleaning and the length filters shared by every source (DATA.md)."""

import re
import unicodedata

_BRACKETS = re.compile(r"[\[\]]")
_NOTES = re.compile(r"\s*(\{[^{}]*\}|\[[^\[\]]*\]|\([^()]*\)|<[^<>]*>)")
_SPACES = re.compile(r"\s+")
_NON_WORD = re.compile(r"[^\w\s]")

MIN_CHAR_RATIO = 0.5
MAX_CHAR_RATIO = 2.0
MAX_TOKENS = 200


def clean_verse(text: str) -> str:
    """A Bible verse as plain text: translator's additions `[...]` keep their words, lose the brackets."""
    text = _BRACKETS.sub("", text).replace("`", "'")
    return _SPACES.sub(" ", text).strip()


def strip_notes(text: str) -> str:
    """Drop dictionary notes: `{n}`, `[ugs.]`, `(Goethe)`, `<metzeln>`."""
    previous = None
    while previous != text:  # notes may nest: "(a (b) c)"
        previous, text = text, _NOTES.sub("", text)
    return _SPACES.sub(" ", text).strip()


def normalise(text: str) -> str:
    """The key used for deduplication and leakage checks: case, punctuation and spacing ignored."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = _NON_WORD.sub("", text)
    return _SPACES.sub(" ", text).strip()


def char_ratio_ok(src: str, tgt: str) -> bool:
    """DATA.md: drop pairs whose character-length ratio lies outside 0.5–2."""
    if not src or not tgt:
        return False
    ratio = len(src) / len(tgt)
    return MIN_CHAR_RATIO <= ratio <= MAX_CHAR_RATIO
