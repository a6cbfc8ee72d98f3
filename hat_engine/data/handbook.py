"""The Debian Administrator's Handbook (`debian-handbook`): `html/en-US/` and `html/de-DE/` hold the same pages;
`div.para` blocks and headings paired in order where the page (or section) structure is the same."""

from hat_engine.data.blocks import HEADINGS, align_pages
from hat_engine.data.clean import Unit
from hat_engine.data.deb import DebFiles

SOURCE = "handbook"
PACKAGES = ("debian-handbook",)
ROOT = "usr/share/doc/debian-handbook/html/"
EN, DE = ROOT + "en-US/", ROOT + "de-DE/"


def want(path: str) -> bool:
    return path.endswith(".html") and (path.startswith(EN) or path.startswith(DE)) and "/Common_Content/" not in path


def is_block(tag: str, attrs: dict[str, str]) -> bool:
    return tag in HEADINGS or (tag == "div" and "para" in attrs.get("class", "").split())


def is_skipped(tag: str, attrs: dict[str, str]) -> bool:
    classes = attrs.get("class", "").split()
    return tag in ("script", "style", "pre", "head") or "navfooter" in classes or "toc" in classes


def align(debs: dict[str, DebFiles]) -> list[Unit]:
    files = debs["debian-handbook"]
    pages = [
        (path[len(EN) : -len(".html")], files[path], files[DE + path[len(EN) :]])
        for path in sorted(files)
        if path.startswith(EN) and DE + path[len(EN) :] in files
    ]
    return align_pages(SOURCE, pages, is_block, is_skipped)
