"""Example sentences from the Ding dictionary (Debian `trans-de-en`, DATA.md source 2).

Lines read `German :: English`; ` | ` separates aligned alternatives on both sides. We keep the aligned
alternatives that look like sentences on both sides.
"""

import io
import lzma
import random
import tarfile
from pathlib import Path

from hat_engine.data.deb import ar_members
from hat_engine.data.text import normalise, strip_notes
from hat_engine.errors import DataError

DING_MEMBER = "usr/share/trans/de-en"
SENTENCE_END = (".", "!", "?")
MIN_WORDS = 3
SPLIT_RULE = (
    "Ding: sentence-like aligned alternatives, ratio-filtered, deduplicated on normalised En and De, "
    "seeded shuffle: 1000 valid, 1000 test, rest train"
)


def read_ding_deb(deb: Path) -> str:
    """The dictionary text inside the `trans-de-en` .deb, read without dpkg."""
    try:
        data = deb.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {deb}: {exc}") from exc
    members = ar_members(data, str(deb))
    payload = next((v for k, v in members.items() if k.startswith("data.tar")), None)
    if payload is None:
        raise DataError(f"{deb}: no data.tar.* member; expected the trans-de-en package")
    try:
        with tarfile.open(fileobj=io.BytesIO(payload), mode="r:*") as tar:
            names = {m.name.lstrip("./"): m for m in tar.getmembers()}
            member = names.get(DING_MEMBER)
            if member is None:
                raise DataError(f"{deb}: no {DING_MEMBER} inside; expected the trans-de-en package")
            raw = tar.extractfile(member)
            assert raw is not None
            return raw.read().decode("utf-8")
    except (tarfile.TarError, lzma.LZMAError, EOFError, UnicodeDecodeError, OSError) as exc:
        raise DataError(f"{deb}: corrupt package payload ({exc}); delete it and run again") from exc


def _sentence(alternative: str) -> str | None:
    """The first `;`-alternative without notes, if it looks like a sentence."""
    text = strip_notes(alternative.split(";")[0])
    if not text:
        return None
    if not text[0].isupper() or not text.endswith(SENTENCE_END) or len(text.split()) < MIN_WORDS:
        return None
    return text


def parse_ding(text: str) -> list[tuple[str, str]]:
    """(English, German) sentence pairs from the dictionary text, in file order."""
    pairs = []
    for line in text.splitlines():
        if line.startswith("#") or " :: " not in line:
            continue
        german, english = line.split(" :: ", 1)
        de_alts, en_alts = german.split(" | "), english.split(" | ")
        if len(de_alts) != len(en_alts):
            continue
        for de_alt, en_alt in zip(de_alts, en_alts, strict=True):
            de, en = _sentence(de_alt), _sentence(en_alt)
            if de and en:
                pairs.append((en, de))
    return pairs


def dedup(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Keep the first pair for each normalised English and each normalised German side."""
    seen_en, seen_de, out = set(), set(), []
    for en, de in pairs:
        ken, kde = normalise(en), normalise(de)
        if ken in seen_en or kde in seen_de:
            continue
        seen_en.add(ken)
        seen_de.add(kde)
        out.append((en, de))
    return out


def ding_split(
    pairs: list[tuple[str, str]], seed: int, n_valid: int = 1000, n_test: int = 1000
) -> dict[str, list[tuple[str, str]]]:
    """The seeded split after deduplication: `n_valid` valid, `n_test` test, the rest train."""
    unique = dedup(pairs)
    if len(unique) < n_valid + n_test + 1:
        raise DataError(f"Ding: only {len(unique)} unique sentence pairs, need more than {n_valid + n_test}")
    random.Random(seed).shuffle(unique)
    return {
        "valid": unique[:n_valid],
        "test": unique[n_valid : n_valid + n_test],
        "train": unique[n_valid + n_test :],
    }
