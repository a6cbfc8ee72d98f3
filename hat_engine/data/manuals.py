"""The smaller manuals: the Debian Edu manual (`debian-edu-doc-en`/`-de`), the Developer's Reference
(`developers-reference`/`-de`) and Inkscape's SVG tutorials (`inkscape-tutorials`): the same page in both
languages, blocks paired by position where the structure is the same."""

import posixpath
import re

from hat_engine.data.blocks import align_pages
from hat_engine.data.clean import Unit
from hat_engine.data.deb import DebFiles

SOURCE = "manuals"
PACKAGES = (
    "debian-edu-doc-en",
    "debian-edu-doc-de",
    "developers-reference",
    "developers-reference-de",
    "inkscape-tutorials",
)
EDU_EN, EDU_DE = "usr/share/doc/debian-edu-doc-en/", "usr/share/doc/debian-edu-doc-de/"
DEVREF_EN, DEVREF_DE = "usr/share/developers-reference/", "usr/share/developers-reference/de/"
DEVREF_SKIPPED = ("developers-reference.html", "genindex.html", "search.html")
TUTORIALS = "usr/share/inkscape/tutorials/"
HTML_BLOCKS = frozenset("p h1 h2 h3 h4 h5 h6 dt td th li caption".split())


def want(path: str) -> bool:
    if path.startswith((EDU_EN, EDU_DE)):
        return path.endswith("-manual.html")
    if path.startswith(DEVREF_EN):
        return path.endswith(".html") and posixpath.dirname(path) + "/" in (DEVREF_EN, DEVREF_DE)
    return path.startswith(TUTORIALS) and path.endswith(".svg")


def _html_block(tag: str, attrs: dict[str, str]) -> bool:
    return tag in HTML_BLOCKS


def _html_skipped(tag: str, attrs: dict[str, str]) -> bool:
    classes = set(attrs.get("class", "").split())
    return tag in ("script", "style", "pre", "head", "footer") or bool(
        classes & {"navheader", "navfooter", "toc", "sphinxsidebar", "related", "highlight"}
    )


def _svg_block(tag: str, attrs: dict[str, str]) -> bool:
    return tag in ("text", "flowroot")


def _svg_signature(block) -> str:
    """A text element's tag and style, without the id of the shape it flows into (ids differ per language)."""
    return block.tag + re.sub(r"shape-inside:url\(#[^)]*\)", "", block.attr("style"))


def align(debs: dict[str, DebFiles]) -> list[Unit]:
    edu_en, edu_de = debs["debian-edu-doc-en"], debs["debian-edu-doc-de"]
    pages = [
        (f"edu/{posixpath.basename(p)}", edu_en[p], edu_de[EDU_DE + p[len(EDU_EN) :]])
        for p in sorted(edu_en)
        if EDU_DE + p[len(EDU_EN) :] in edu_de
    ]
    dev_en, dev_de = debs["developers-reference"], debs["developers-reference-de"]
    pages += [
        (f"devref/{p[len(DEVREF_EN) :]}", dev_en[p], dev_de[DEVREF_DE + p[len(DEVREF_EN) :]])
        for p in sorted(dev_en)
        if not p.endswith(DEVREF_SKIPPED) and DEVREF_DE + p[len(DEVREF_EN) :] in dev_de
    ]
    units = align_pages(SOURCE, pages, _html_block, _html_skipped)
    svg = debs["inkscape-tutorials"]
    tutorials = [
        (f"inkscape/{p[len(TUTORIALS) :]}", svg[p], svg[p.removesuffix(".svg") + ".de.svg"])
        for p in sorted(svg)
        if p.count(".") == 1 and p.removesuffix(".svg") + ".de.svg" in svg
    ]
    return units + align_pages(SOURCE, tutorials, _svg_block, xml=True, signature=_svg_signature)
