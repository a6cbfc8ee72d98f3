"""The GIMP manual (`gimp-help-en`, `gimp-help-de`): the same HTML page in both, blocks paired by position
where the block structure is the same (682 of 685 pages, DATA.md)."""

from hat_engine.data.blocks import align_pages
from hat_engine.data.clean import Unit
from hat_engine.data.deb import DebFiles

SOURCE = "gimp"
PACKAGES = ("gimp-help-en", "gimp-help-de")
ROOTS = {"gimp-help-en": "usr/share/gimp/2.0/help/en/", "gimp-help-de": "usr/share/gimp/2.0/help/de/"}
BLOCK_TAGS = frozenset("p h1 h2 h3 h4 h5 h6 dt td th li caption".split())
SKIPPED_CLASSES = frozenset("navheader navfooter toc programlisting screen".split())


def want(path: str) -> bool:
    return path.endswith(".html") and any(path.startswith(root) for root in ROOTS.values())


def is_block(tag: str, attrs: dict[str, str]) -> bool:
    return tag in BLOCK_TAGS


def is_skipped(tag: str, attrs: dict[str, str]) -> bool:
    return tag in ("script", "style", "pre", "head") or bool(
        SKIPPED_CLASSES.intersection(attrs.get("class", "").split())
    )


def align(debs: dict[str, DebFiles]) -> list[Unit]:
    en_root, de_root = ROOTS["gimp-help-en"], ROOTS["gimp-help-de"]
    en, de = debs["gimp-help-en"], debs["gimp-help-de"]
    pages = [
        (path[len(en_root) : -len(".html")], en[path], de[de_root + path[len(en_root) :]])
        for path in sorted(en)
        if de_root + path[len(en_root) :] in de
    ]
    return align_pages(SOURCE, pages, is_block, is_skipped)
