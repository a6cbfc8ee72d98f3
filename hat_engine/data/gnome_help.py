"""GNOME, Evolution and MATE help (`gnome-user-docs`, `gnome-devel-docs`, `evolution-common`, `mate-user-guide`):
`usr/share/help/de/<doc>/<page>` against `usr/share/help/C/<doc>/<page>`, Mallard `.page` or DocBook `.xml`.
Leaf text blocks in document order, `<info>` (credits, revision notes) and editor comments skipped."""

from hat_engine.data.blocks import align_pages
from hat_engine.data.clean import Unit
from hat_engine.data.deb import DebFiles

SOURCE = "gnome_help"
PACKAGES = ("gnome-user-docs", "gnome-devel-docs", "evolution-common", "mate-user-guide")
HELP = "usr/share/help/"
EN, DE = HELP + "C/", HELP + "de/"
# Mallard's and DocBook's paragraph-level elements (list items and table cells hold <p>/<para>).
BLOCK_TAGS = frozenset("p title subtitle desc para simpara term glossterm entry".split())
SKIPPED_TAGS = frozenset("info comment screen programlisting synopsis media".split())


def want(path: str) -> bool:
    return path.startswith((EN, DE)) and path.endswith((".page", ".xml")) and "/figures/" not in path


def is_block(tag: str, attrs: dict[str, str]) -> bool:
    return tag in BLOCK_TAGS


def is_skipped(tag: str, attrs: dict[str, str]) -> bool:
    return tag in SKIPPED_TAGS


def _is_heading(block) -> bool:
    return block.tag == "title"


def align(debs: dict[str, DebFiles]) -> list[Unit]:
    units = []
    for package in PACKAGES:
        files = debs[package]
        pages = [
            (f"{package}/{path[len(EN) :]}", files[path], files[DE + path[len(EN) :]])
            for path in sorted(files)
            if path.startswith(EN) and DE + path[len(EN) :] in files
        ]
        units += align_pages(SOURCE, pages, is_block, is_skipped, xml=True)
    return units
