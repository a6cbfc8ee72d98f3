"""`format: "html"`: translate an HTML fragment's text nodes and keep its markup.

The input is parsed (the standard library's tolerant parser) and written out again from the parsed tags, never
copied through, so the reply holds only well-formed tags and escaped text. Nothing that can run is echoed:
<script>, <style>, <template>, <iframe>, <object>, <embed> and <noscript> go with their content, as do comments
and processing instructions; `on*` event attributes, `style` and `javascript:`/`vbscript:`/`data:` URLs are dropped.
Text inside <pre>, <code> and <textarea> is kept as it is (code is not prose). Each text node is translated on its
own, leading and trailing whitespace kept, so inline markup (`The <b>house</b> is small.`) splits a sentence:
the markup survives, the sentence is translated in parts.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

DROPPED = {"script", "style", "template", "iframe", "object", "embed", "noscript", "frame", "frameset", "applet"}
VERBATIM = {"pre", "code", "textarea", "kbd", "samp", "var"}
VOID = {"area", "base", "br", "col", "hr", "img", "input", "link", "meta", "param", "source", "track", "wbr"}
_URL_ATTRS = {"href", "src", "action", "formaction", "xlink:href", "srcset", "poster", "background", "cite", "data"}
_BAD_SCHEME = re.compile(r"^\s*(javascript|vbscript|data)\s*:", re.IGNORECASE)
_NAME = re.compile(r"^[a-zA-Z][a-zA-Z0-9:_.-]*$")


@dataclass
class Document:
    """Output pieces, and which of them are text to translate (indices into `parts`)."""

    parts: list[str] = field(default_factory=list)
    texts: list[int] = field(default_factory=list)

    def render(self, translations: list[str]) -> str:
        parts = list(self.parts)
        for i, translated in zip(self.texts, translations, strict=True):
            lead = parts[i][: len(parts[i]) - len(parts[i].lstrip())]
            trail = parts[i][len(parts[i].rstrip()) :]
            parts[i] = lead + html.escape(translated, quote=False) + trail
        return "".join(parts)

    def text_nodes(self) -> list[str]:
        return [self.parts[i].strip() for i in self.texts]


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.doc = Document()
        self.dropping: list[str] = []  # open dropped elements (their content goes too)
        self.verbatim = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in DROPPED:
            if tag not in VOID:
                self.dropping.append(tag)
            return
        if self.dropping or not _NAME.match(tag):
            return
        if tag in VERBATIM and tag not in VOID:
            self.verbatim += 1
        self.doc.parts.append(f"<{tag}{_attributes(attrs)}>")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in DROPPED or self.dropping or not _NAME.match(tag):
            return
        self.doc.parts.append(f"<{tag}{_attributes(attrs)}>" if tag in VOID else f"<{tag}{_attributes(attrs)}></{tag}>")

    def handle_endtag(self, tag: str) -> None:
        if tag in DROPPED:
            if tag in self.dropping:
                while self.dropping and self.dropping.pop() != tag:
                    pass
            return
        if self.dropping or tag in VOID or not _NAME.match(tag):
            return
        if tag in VERBATIM and self.verbatim:
            self.verbatim -= 1
        self.doc.parts.append(f"</{tag}>")

    def handle_data(self, data: str) -> None:
        if self.dropping or not data:
            return
        if data.strip() and not self.verbatim:
            self.doc.texts.append(len(self.doc.parts))
            self.doc.parts.append(data)
        else:
            self.doc.parts.append(html.escape(data, quote=False))

    def handle_decl(self, decl: str) -> None:
        if decl.lower().strip() == "doctype html":
            self.doc.parts.append("<!DOCTYPE html>")

    # comments, processing instructions and CDATA-like declarations are dropped
    def handle_comment(self, data: str) -> None:
        pass

    def handle_pi(self, data: str) -> None:
        pass

    def unknown_decl(self, data: str) -> None:
        pass


def _attributes(attrs: list[tuple[str, str | None]]) -> str:
    out = []
    for name, value in attrs:
        name = name.lower()
        if not _NAME.match(name) or name.startswith("on") or name in ("style", "srcdoc", "formaction"):
            continue
        if value is None:
            out.append(f" {name}")
            continue
        if name in _URL_ATTRS and _BAD_SCHEME.match(value):
            continue
        out.append(f' {name}="{html.escape(value, quote=True)}"')
    return "".join(out)


def parse(markup: str) -> Document:
    """The fragment's safe markup and its translatable text nodes."""
    builder = _Builder()
    builder.feed(markup)
    builder.close()
    return builder.doc
