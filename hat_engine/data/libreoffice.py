"""LibreOffice help (`libreoffice-help-de`, `libreoffice-help-en-us`): the same page under `help/de/` and
`help/en-US/`, paragraphs paired by their `id` (`par_id…`, `hd_id…`). The hidden macOS variants
(`class="MAC"`) are dropped first: they would put "Command" and "Ctrl" side by side."""

import posixpath

from hat_engine.data.blocks import extract_blocks
from hat_engine.data.clean import Unit
from hat_engine.data.deb import DebFiles

SOURCE = "libreoffice"
PACKAGES = ("libreoffice-help-en-us", "libreoffice-help-de")
EN_ROOT, DE_ROOT = "usr/share/libreoffice/help/en-US/", "usr/share/libreoffice/help/de/"


def want(path: str) -> bool:
    return path.endswith(".html") and (path.startswith(EN_ROOT) or path.startswith(DE_ROOT))


def _is_block(tag: str, attrs: dict[str, str]) -> bool:
    return attrs.get("id", "").startswith(("par_id", "hd_id"))


def _is_skipped(tag: str, attrs: dict[str, str]) -> bool:
    return tag in ("script", "style") or "hidden" in attrs or "MAC" in attrs.get("class", "").split()


def paragraphs(html: bytes) -> dict[str, str]:
    """Paragraph text by id; an id that occurs twice keeps its first text."""
    out: dict[str, str] = {}
    for block in extract_blocks(html, _is_block, _is_skipped):
        out.setdefault(block.attr("id"), block.text)
    return out


def align(debs: dict[str, DebFiles]) -> list[Unit]:
    en_files, de_files = debs["libreoffice-help-en-us"], debs["libreoffice-help-de"]
    units = []
    for path in sorted(en_files):
        if not path.startswith(EN_ROOT):
            continue
        page = path[len(EN_ROOT) :]
        de_html = de_files.get(DE_ROOT + page)
        if de_html is None:
            continue
        en_pars, de_pars = paragraphs(en_files[path]), paragraphs(de_html)
        doc = posixpath.splitext(page)[0]
        units += [Unit(SOURCE, doc, text, de_pars[pid]) for pid, text in en_pars.items() if pid in de_pars]
    return units
