"""Debian package descriptions (DDTP): the archive's `i18n/Translation-de` and `Translation-en` of `main`,
joined on `Description-md5`. Long descriptions split into paragraphs and bullet items; an item pairs where the
two sides have as many items and the item as many sentences; short descriptions pair as they are.

The `Translation-*` files come from `apt-get update` through a private APT configuration (see `fetch.py`).
"""

import re

from hat_engine.data.clean import Unit, sentences

SOURCE = "ddtp"
_BULLET = re.compile(r"^\s*[*•o+-]\s+")


def parse_translation(text: str, language: str) -> dict[str, tuple[str, str]]:
    """Description-md5 -> (package, description text) of one `Translation-<language>` file."""
    out: dict[str, tuple[str, str]] = {}
    field = f"Description-{language}:"
    for stanza in text.split("\n\n"):
        package = md5 = None
        lines: list[str] = []
        in_description = False
        for line in stanza.splitlines():
            if line.startswith("Package:"):
                package, in_description = line.split(":", 1)[1].strip(), False
            elif line.startswith("Description-md5:"):
                md5, in_description = line.split(":", 1)[1].strip(), False
            elif line.startswith(field):
                lines, in_description = [line[len(field) :].strip()], True
            elif in_description and line.startswith(" "):
                lines.append(line[1:])
            else:
                in_description = False
        if package and md5 and lines:
            out.setdefault(md5, (package, "\n".join(lines)))
    return out


def items(description: str) -> tuple[str, list[str]]:
    """The short description and the long description's paragraphs and bullet items, whitespace normalised."""
    short, *long = description.split("\n")
    out: list[str] = []
    current: list[str] = []
    for line in long:
        if line.strip() == ".":
            out.append(" ".join(current))
            current = []
        elif _BULLET.match(line):
            out.append(" ".join(current))
            current = [_BULLET.sub("", line)]
        else:
            current.append(line.strip())
    out.append(" ".join(current))
    return short.strip(), [" ".join(i.split()) for i in out if i.strip()]


def align(english: dict[str, tuple[str, str]], german: dict[str, tuple[str, str]], reserved) -> list[Unit]:
    """Units of every description translated into German; packages `reserved(name)` refuses are left out."""
    units = []
    for md5 in sorted(german.keys() & english.keys()):
        package, de_text = german[md5]
        if reserved(package):
            continue
        en_short, en_items = items(english[md5][1])
        de_short, de_items = items(de_text)
        units.append(Unit(SOURCE, package, en_short, de_short))
        if len(en_items) != len(de_items):
            continue
        for en_item, de_item in zip(en_items, de_items, strict=True):
            en_sents, de_sents = sentences(en_item), sentences(de_item)
            if len(en_sents) == len(de_sents):
                units += [Unit(SOURCE, package, e, d) for e, d in zip(en_sents, de_sents, strict=True)]
    return units
