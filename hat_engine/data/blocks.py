"""Text blocks of an HTML or XML page in document order, and the positional alignment of two such pages.

Translated manuals (GIMP, the Debian Handbook, GNOME's Mallard pages, SVG tutorials) keep the English page's
structure: the k-th paragraph of the German page translates the k-th of the English one. We pair blocks by
position only where the structure (the sequence of block tags) is the same, section by section.
"""

import difflib
from collections.abc import Callable
from dataclasses import dataclass

from lxml import etree, html

from hat_engine.data.clean import Unit

HEADINGS = frozenset("h1 h2 h3 h4 h5 h6".split())
MIN_RUN = 3  # the shortest run of equal signatures paired where two pages differ in structure

Attrs = dict[str, str]
TagTest = Callable[[str, Attrs], bool]
_XML_PARSER = etree.XMLParser(recover=True, resolve_entities=False, no_network=True, huge_tree=True)
_HTML_PARSER = html.HTMLParser(encoding="utf-8")  # every manual here is UTF-8; lxml would guess Latin-1


@dataclass(frozen=True)
class Block:
    tag: str
    attrs: tuple[tuple[str, str], ...]
    text: str

    def attr(self, name: str) -> str:
        return dict(self.attrs).get(name, "")


def _walk(el, parts: list[str] | None, blocks: list, is_block: TagTest, is_skipped: TagTest) -> None:
    """Add `el`'s text to its block's parts (a new block when `el` is one); its tail belongs to the parent."""
    tag = el.tag
    if isinstance(tag, str):
        if tag[0] == "{":
            tag = tag.rpartition("}")[2]  # an XML namespace: Mallard's, SVG's
        tag = tag.lower()
        attrs = el.attrib
        if not is_skipped(tag, attrs):
            own = parts
            if is_block(tag, attrs):
                own = []
                blocks.append((tag, attrs, own))
            if own is not None and el.text:
                own.append(el.text)
            for child in el:
                _walk(child, own, blocks, is_block, is_skipped)
    if parts is not None and el.tail:
        parts.append(el.tail)


def extract_blocks(
    markup: bytes, is_block: TagTest, is_skipped: TagTest = lambda t, a: False, xml: bool = False
) -> list[Block]:
    """Non-empty blocks (their own text, not that of blocks nested in them) in the order they open.

    `is_skipped` elements are left out with everything inside them. Whitespace is normalised.
    """
    if not markup.strip():
        return []
    try:
        root = etree.fromstring(markup, _XML_PARSER) if xml else html.fromstring(markup, parser=_HTML_PARSER)
    except (etree.ParserError, etree.XMLSyntaxError, ValueError):
        return []
    if root is None:
        return []
    found: list = []
    _walk(root, None, found, is_block, is_skipped)
    blocks = []
    for tag, attrs, parts in found:
        text = " ".join("".join(parts).split())
        if text:
            blocks.append(Block(tag, tuple(sorted(attrs.items())), text))
    return blocks


def _sections(blocks: list[Block], is_heading: Callable[[Block], bool]) -> list[list[Block]]:
    sections: list[list[Block]] = [[]]
    for block in blocks:
        if is_heading(block) and sections[-1]:
            sections.append([])
        sections[-1].append(block)
    return sections


def _default_signature(block: Block) -> str:
    return block.tag


def align_by_position(
    en: list[Block],
    de: list[Block],
    is_heading: Callable[[Block], bool] = lambda b: b.tag in HEADINGS,
    signature: Callable[[Block], str] = _default_signature,
) -> tuple[list[tuple[str, str]], int]:
    """(English, German) text pairs of two pages with the same structure; and how many blocks were unpaired.

    The whole page pairs when its sequence of block signatures (by default the tags) is the same in both.
    Otherwise each section (split at headings) pairs where the section counts agree and the section's own
    sequence is the same; failing that, runs of at least `MIN_RUN` equal signatures pair (difflib).
    """
    sig_en, sig_de = [signature(b) for b in en], [signature(b) for b in de]
    if sig_en == sig_de:
        return [(e.text, d.text) for e, d in zip(en, de, strict=True)], 0
    en_sections, de_sections = _sections(en, is_heading), _sections(de, is_heading)
    pairs: list[tuple[str, str]] = []
    if len(en_sections) == len(de_sections) and len(en_sections) > 1:
        unpaired = 0
        for es, ds in zip(en_sections, de_sections, strict=True):
            if [signature(b) for b in es] == [signature(b) for b in ds]:
                pairs += [(e.text, d.text) for e, d in zip(es, ds, strict=True)]
            else:
                unpaired += len(es)
        return pairs, unpaired
    matcher = difflib.SequenceMatcher(None, sig_en, sig_de, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal" and i2 - i1 >= MIN_RUN:
            pairs += [(en[i].text, de[j].text) for i, j in zip(range(i1, i2), range(j1, j2), strict=True)]
    return pairs, len(en) - len(pairs)


def align_pages(
    source: str,
    pages: list[tuple[str, bytes, bytes]],
    is_block: TagTest,
    is_skipped: TagTest = lambda t, a: False,
    xml: bool = False,
    signature: Callable[[Block], str] = _default_signature,
) -> list[Unit]:
    """Units of (document, English page, German page) triples whose structure pairs (`align_by_position`)."""
    units = []
    for doc, en, de in pages:
        en_blocks, de_blocks = (
            extract_blocks(en, is_block, is_skipped, xml),
            extract_blocks(de, is_block, is_skipped, xml),
        )
        pairs, _ = align_by_position(en_blocks, de_blocks, signature=signature)
        units += [Unit(source, doc, e, d) for e, d in pairs]
    return units
