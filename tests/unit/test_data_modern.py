"""Corpus v2's modern sources on tiny fixtures in the real formats: .deb files, HTML, Mallard, SVG, roff, .mo,
DDTP Translation files; the shared cleaning; the document split; the reserved Debian Reference."""

import gzip
from collections import Counter
from pathlib import Path

import pytest

from hat_engine.data import BuildOptions, build_corpus, catalogs, ddtp, gimp, libreoffice, manpages, manuals, modern
from hat_engine.data.blocks import Block, align_by_position, extract_blocks
from hat_engine.data.clean import Unit, clean_units, reject_reason, sentences, strip_markup
from hat_engine.data.corpus import ALL_SOURCES, parse_sources
from hat_engine.data.deb import package_name, read_deb
from hat_engine.data.gnome_help import align as gnome_align
from hat_engine.data.handbook import align as handbook_align
from hat_engine.data.text import normalise
from hat_engine.errors import DataError
from tests.unit.data_fixtures import make_mo, make_package


def _page(body: str) -> bytes:
    return f"<html><head><title>t</title><script>var x;</script></head><body>{body}</body></html>".encode()


# ---------------------------------------------------------------- reading packages


def test_read_deb_filters_and_follows_symlinks(tmp_path):
    deb = make_package(
        tmp_path, "demo", {"usr/share/a.html": b"A", "usr/share/b.png": b"B"}, links={"usr/share/c.html": "a.html"}
    )
    files = read_deb(deb, lambda p: p.endswith(".html"))
    assert files == {"usr/share/a.html": b"A", "usr/share/c.html": b"A"}
    assert package_name(tmp_path / "libreoffice-help-de_4%3a7.4.7-1_all.deb") == "libreoffice-help-de"
    (tmp_path / "bad.deb").write_bytes(b"!<arch>\n" + b"data.tar.xz/".ljust(48) + b"4".ljust(10) + b"`\nxxxx")
    with pytest.raises(DataError, match="corrupt package payload"):
        read_deb(tmp_path / "bad.deb", lambda p: True)


# ---------------------------------------------------------------- cleaning


def test_strip_markup_and_accelerators():
    assert strip_markup("Open  <b>the</b>\n file") == "Open the file"
    assert strip_markup("&File", ui=True) == "File" and strip_markup("Sav_e as", ui=True) == "Save as"
    assert strip_markup("Datei (_F)", ui=True) == "Datei" and strip_markup("Tom & Jerry", ui=True) == "Tom & Jerry"
    assert strip_markup("R&D", ui=False) == "R&D"


@pytest.mark.parametrize(
    ("en", "de", "reason"),
    [
        ("Delete %s now", "%s jetzt löschen", "placeholder"),
        ("Open {0} files", "{0} Dateien öffnen", "placeholder"),
        ("Set $HOME first", "Zuerst $HOME setzen", "placeholder"),
        ("Line one\\nline two", "Zeile eins\\nZeile zwei", "placeholder"),
        ("See https://example.org today", "Siehe https://example.org heute", "url_or_path"),
        ("Edit /etc/apt/sources.list now", "Bearbeiten Sie /etc/apt/sources.list", "url_or_path"),
        ("Firefox", "Firefox", "untranslated"),
        ("The file is saved to the disk.", "The file is saved to the disk!", "untranslated"),
        ("Save the file to the disk.", "Save the file to the Festplatte.", "still_english"),
        ("Save the file now please.", "Speichern.", "word_ratio"),
        (" ".join(["word"] * 61), " ".join(["Wort"] * 61), "too_many_words"),
        ("Save the file to disk.", "Speichern Sie die Datei auf der Festplatte:", "final_punctuation"),
        ("Save the file to disk.", "Speichern Sie die Datei auf der Festplatte.", None),
        ("50% of the disk", "50 % der Festplatte", None),
    ],
)
def test_reject_reasons(en, de, reason):
    assert reject_reason(en, de) == reason


def test_clean_units_splits_dedupes_and_counts():
    units = [
        Unit("s", "p1", "The cat sleeps. The dog barks loudly.", "Die Katze schläft. Der Hund bellt laut."),
        Unit("s", "p1", "The cat sleeps!", "Die Katze schläft!"),  # same pair after normalisation
        Unit("s", "p2", "The cat sleeps", "Die Katze ruht"),  # same English, other German
        Unit("s", "p2", "Open %s", "%s öffnen"),
        Unit("s", "p3", "One. Two three.", "Eins zwei drei."),  # sentence counts differ: kept whole
    ]
    dropped = Counter()
    kept = clean_units(units, dropped)
    assert [(u.doc, u.en) for u in kept] == [
        ("p1", "The cat sleeps."),
        ("p1", "The dog barks loudly."),
        ("p3", "One. Two three."),
    ]
    assert dropped == {"duplicate_pair": 1, "duplicate_english": 1, "placeholder": 1}
    assert sentences("Das ist z. B. gut. Der Hund bellt!") == ["Das ist z. B. gut.", "Der Hund bellt!"]


# ---------------------------------------------------------------- blocks and positional alignment


def test_extract_blocks_own_text_and_skips():
    html = _page(
        '<p id="a">Hello <b>big</b> world<span class="MAC">Cmd</span></p><div class="nav"><p>menu</p></div>'
        "<ul><li>one<p>inner</p> tail</li></ul><p>x &amp; y</p>"
    )
    blocks = extract_blocks(html, lambda t, a: t in ("p", "li"), lambda t, a: a.get("class") in ("MAC", "nav"))
    assert [(b.tag, b.text) for b in blocks] == [
        ("p", "Hello big world"),
        ("li", "one tail"),
        ("p", "inner"),
        ("p", "x & y"),
    ]
    assert blocks[0].attr("id") == "a"
    xml = b'<page xmlns="http://projectmallard.org/1.0/"><info><desc>d</desc></info><p>Text</p></page>'
    assert [b.text for b in extract_blocks(xml, lambda t, a: t in ("p", "desc"), lambda t, a: t == "info", True)] == [
        "Text"
    ]


def _blocks(*tags_texts: str) -> list[Block]:
    return [Block(t.split(":")[0], (), t.split(":")[1]) for t in tags_texts]


def test_align_by_position_whole_page_sections_and_runs():
    en = _blocks("h1:A", "p:a1", "h2:B", "p:b1", "p:b2")
    de = _blocks("h1:A'", "p:a1'", "h2:B'", "p:b1'", "p:b2'")
    assert align_by_position(en, de) == ([("A", "A'"), ("a1", "a1'"), ("B", "B'"), ("b1", "b1'"), ("b2", "b2'")], 0)
    de_extra = _blocks("h1:A'", "p:a1'", "li:x", "h2:B'", "p:b1'", "p:b2'")  # section A differs
    assert align_by_position(en, de_extra) == ([("B", "B'"), ("b1", "b1'"), ("b2", "b2'")], 2)
    flat_en = _blocks("p:1", "p:2", "p:3", "li:4", "p:5")
    flat_de = _blocks("p:1'", "p:2'", "p:3'", "td:x", "li:4'", "p:5'")
    assert align_by_position(flat_en, flat_de)[0] == [("1", "1'"), ("2", "2'"), ("3", "3'")]  # runs of >= 3


# ---------------------------------------------------------------- the aligners


def test_libreoffice_pairs_by_id_without_mac_spans():
    en = _page(
        '<h1 id="hd_id1">Insert Table</h1><p id="par_id2">Press <span class="MAC">Command</span>'
        '<span class="WIN">Ctrl</span>+T.</p><p id="par_id3">Only English.</p><p>no id</p>'
    )
    de = _page(
        '<p id="par_id2">Drücken Sie <span hidden="true" class="MAC">Befehl</span>Strg+T.</p>'
        '<h1 id="hd_id1">Tabelle einfügen</h1>'
    )
    root_en, root_de = libreoffice.EN_ROOT + "text/swriter/x.html", libreoffice.DE_ROOT + "text/swriter/x.html"
    units = libreoffice.align({"libreoffice-help-en-us": {root_en: en}, "libreoffice-help-de": {root_de: de}})
    assert [(u.doc, u.en, u.de) for u in units] == [
        ("text/swriter/x", "Insert Table", "Tabelle einfügen"),
        ("text/swriter/x", "Press Ctrl+T.", "Drücken Sie Strg+T."),
    ]


def test_gimp_pairs_same_structure_pages_only():
    en_root, de_root = gimp.ROOTS["gimp-help-en"], gimp.ROOTS["gimp-help-de"]
    same = (
        _page("<h2>Layers</h2><p>A layer is a sheet.</p>"),
        _page("<h2>Ebenen</h2><p>Eine Ebene ist ein Blatt.</p>"),
    )
    other = (_page("<p>One.</p><p>Two.</p>"), _page("<p>Eins.</p><ul><li>Zwei.</li></ul>"))
    debs = {
        "gimp-help-en": {en_root + "layers.html": same[0], en_root + "other.html": other[0]},
        "gimp-help-de": {de_root + "layers.html": same[1], de_root + "other.html": other[1]},
    }
    assert [(u.doc, u.de) for u in gimp.align(debs)] == [("layers", "Ebenen"), ("layers", "Eine Ebene ist ein Blatt.")]
    assert gimp.want(en_root + "x.html") and not gimp.want(en_root + "images/x.png")


def test_handbook_pairs_div_para():
    from hat_engine.data.handbook import DE, EN

    en = _page('<h1>APT</h1><div class="para">APT installs packages.</div><div class="toc"><p>toc</p></div>')
    de = _page('<h1>APT</h1><div class="para">APT installiert Pakete.</div><div class="toc"><p>Inhalt</p></div>')
    units = handbook_align({"debian-handbook": {EN + "apt.html": en, DE + "apt.html": de}})
    assert [(u.doc, u.en, u.de) for u in units] == [
        ("apt", "APT", "APT"),
        ("apt", "APT installs packages.", "APT installiert Pakete."),
    ]


def test_gnome_help_skips_info_and_pairs_mallard():
    from hat_engine.data.gnome_help import DE, EN, PACKAGES

    def page(title: str, text: str) -> bytes:
        return (
            f'<page xmlns="http://projectmallard.org/1.0/"><info><credit><name>Ann</name></credit></info>'
            f"<title>{title}</title><p>{text} <gui>OK</gui>.</p><screen>ls -l</screen></page>"
        ).encode()

    debs = {p: {} for p in PACKAGES}
    debs["evolution-common"] = {
        EN + "evolution/mail.page": page("Mail", "Click"),
        DE + "evolution/mail.page": page("E-Mail", "Klicken Sie auf"),
    }
    units = gnome_align(debs)
    assert [(u.doc, u.en, u.de) for u in units] == [
        ("evolution-common/evolution/mail.page", "Mail", "E-Mail"),
        ("evolution-common/evolution/mail.page", "Click OK.", "Klicken Sie auf OK."),
    ]


def test_manuals_svg_tutorials_align_by_style():
    def svg(texts: list[tuple[str, str]]) -> bytes:
        body = "".join(
            f'<text style="font-size:{s};shape-inside:url(#id{i})"><tspan>{t}</tspan></text>'
            for i, (s, t) in enumerate(texts)
        )
        return f'<svg xmlns="http://www.w3.org/2000/svg">{body}</svg>'.encode()

    en = svg([("16", "Basic"), ("7", "Drag to move."), ("7", "Press Tab."), ("7", "Scroll to zoom."), ("7", "Done.")])
    de = svg(
        [
            ("16", "Grundlagen"),
            ("7", "Ziehen verschiebt."),
            ("7", "Tab drücken."),
            ("7", "Rollen zoomt."),
            ("5", "x"),
            ("7", "Fertig."),
        ]
    )
    t = manuals.TUTORIALS
    debs = {p: {} for p in manuals.PACKAGES}
    debs["inkscape-tutorials"] = {
        t + "tutorial-basic.svg": en,
        t + "tutorial-basic.de.svg": de,
        t + "tutorial-basic.fr.svg": en,
    }
    units = manuals.align(debs)
    assert [(u.en, u.de) for u in units] == [
        ("Basic", "Grundlagen"),
        ("Drag to move.", "Ziehen verschiebt."),
        ("Press Tab.", "Tab drücken."),
        ("Scroll to zoom.", "Rollen zoomt."),
    ]


def test_read_mo_and_catalog_units():
    mo = make_mo(
        [
            ("&Open", "Ö&ffnen"),
            ("menu\x04Close", "Schließen"),
            ("One file\x00%d files", "Eine Datei\x00%d Dateien"),
            ("Untranslated", ""),
            ("Two\nlines", "Zwei\nZeilen"),
        ]
    )
    pairs = dict(catalogs.read_mo(mo))
    assert pairs == {"&Open": "Ö&ffnen", "Close": "Schließen", "One file": "Eine Datei", "Two\nlines": "Zwei\nZeilen"}
    debs = {p: {} for p in catalogs.PACKAGES}
    debs["inkscape"] = {"usr/share/locale/de/LC_MESSAGES/inkscape.mo": mo}
    dropped = Counter()
    kept = clean_units(catalogs.align(debs), dropped, ui=True)
    assert sorted(u.en for u in kept) == ["Close", "One file", "Open"] and dropped == {"placeholder": 1}
    with pytest.raises(DataError, match="not a GNU .mo"):
        catalogs.read_mo(b"\0" * 40)


ROFF_EN = r""".TH LS 1
.SH NAME
ls \- list directory contents
.SH SYNOPSIS
.B ls
[\fIOPTION\fR]...
.SH DESCRIPTION
.PP
List information about the FILEs.
.TP
\fB\-a\fR, \fB\-\-all\fR
do not ignore entries starting with .
.nf
ls \-l
.fi
"""
ROFF_DE = r""".\" generated with po4a
.TH LS 1
.SH BEZEICHNUNG
ls \- Verzeichnisinhalte auflisten
.SH ÜBERSICHT
\fBls\fP [\fIOPTION\fP]…
.SH BESCHREIBUNG
.PP
Informationen über die DATEIen auflisten.
.TP
\fB\-a\fP, \fB\-\-all\fP
Einträge nicht ignorieren, die mit ».« beginnen
.SH ÜBERSETZUNG
Die deutsche Übersetzung wurde von Jemand erstellt.
"""


def test_manpages_units_and_alignment():
    assert manpages.units(ROFF_EN)[:3] == [("SH", "NAME"), ("P", "ls - list directory contents"), ("SH", "SYNOPSIS")]
    debs = {p: {} for p in manpages.PACKAGES}
    debs["coreutils"] = {"usr/share/man/man1/ls.1.gz": gzip.compress(ROFF_EN.encode())}
    debs["manpages-de"] = {
        "usr/share/man/de/man1/ls.1.gz": gzip.compress(ROFF_DE.encode()),
        "usr/share/man/de/man1/cp.1.gz": gzip.compress(ROFF_DE.encode()),  # no English page: skipped
    }
    units = manpages.align(debs)
    assert [(u.en, u.de) for u in units] == [
        ("NAME", "BEZEICHNUNG"),
        ("ls - list directory contents", "ls - Verzeichnisinhalte auflisten"),
        ("SYNOPSIS", "ÜBERSICHT"),
        ("DESCRIPTION", "BESCHREIBUNG"),
        ("List information about the FILEs.", "Informationen über die DATEIen auflisten."),
        ("-a, --all", "-a, --all"),
        ("do not ignore entries starting with .", "Einträge nicht ignorieren, die mit ».« beginnen"),
    ]
    assert {u.doc for u in units} == {"ls.1"}
    debs["manpages-de"]["usr/share/man/de/man1/ls.1.gz"] = gzip.compress(ROFF_DE.replace(".TP\n", ".PP\n").encode())
    assert manpages.align(debs) == []  # the structure differs: the page is not paired


TRANSLATION_EN = """Package: editor
Description-md5: aaa
Description-en: small text editor
 The editor edits text. It is small.
 .
  * fast start
  * low memory use

Package: debian-reference-en
Description-md5: bbb
Description-en: Debian system administrator's manual
 This document provides an overview.
"""
TRANSLATION_DE = """Package: editor
Description-md5: aaa
Description-de: kleiner Texteditor
 Der Editor bearbeitet Text. Er ist klein.
 .
  * schneller Start
  * geringer Speicherbedarf

Package: debian-reference-en
Description-md5: bbb
Description-de: Handbuch für Debian-Systemverwalter
 Dieses Dokument bietet einen Überblick.
"""


def test_ddtp_joins_on_md5_and_refuses_the_debian_reference():
    english, german = ddtp.parse_translation(TRANSLATION_EN, "en"), ddtp.parse_translation(TRANSLATION_DE, "de")
    assert english["aaa"][0] == "editor" and ddtp.items(german["aaa"][1])[1] == [
        "Der Editor bearbeitet Text. Er ist klein.",
        "schneller Start",
        "geringer Speicherbedarf",
    ]
    units = ddtp.align(english, german, modern.reserved)
    assert [(u.doc, u.en, u.de) for u in units] == [
        ("editor", "small text editor", "kleiner Texteditor"),
        ("editor", "The editor edits text.", "Der Editor bearbeitet Text."),
        ("editor", "It is small.", "Er ist klein."),
        ("editor", "fast start", "schneller Start"),
        ("editor", "low memory use", "geringer Speicherbedarf"),
    ]


# ---------------------------------------------------------------- sources, reserved data, the document split


def test_no_package_list_names_the_debian_reference():
    assert not [p for p in modern.packages(ALL_SOURCES) if p.startswith("debian-reference")]
    with pytest.raises(DataError, match="reserved"):
        modern.check_packages(["gimp-help-de", "debian-reference-en"])
    assert parse_sources("bible,modern") == ("bible", *modern.MODERN_SOURCES)
    assert parse_sources("all") == ALL_SOURCES
    with pytest.raises(DataError, match="unknown source 'debian-reference'"):
        parse_sources("bible,debian-reference")


def test_document_split_is_stratified_by_document_and_keeps_ui_out_of_test():
    units = {
        "big": [Unit("big", f"page{d}", f"Sentence {d} {i}.", f"Satz {d} {i}.") for d in range(200) for i in range(3)],
        "small": [Unit("small", f"doc{d}", f"Line {d}.", f"Zeile {d}.") for d in range(5)],
        "ui": [Unit("ui", f"app{d}.mo", f"Open {d}", f"Öffnen {d}") for d in range(100)],
    }
    parts = modern.document_split(units, seed=1)
    for role in ("valid", "test"):
        assert {u.source for u in parts[role]} == {"big", "small"}
        assert len({u.doc for u in parts[role] if u.source == "big"}) == 4  # 2 % of 200 documents
    docs = {role: {(u.source, u.doc) for u in parts[role]} for role in ("train", "valid", "test")}
    assert not docs["train"] & docs["valid"] and not docs["train"] & docs["test"] and not docs["valid"] & docs["test"]
    assert len(parts["ui_train"]) == 100 and parts == modern.document_split(units, seed=1)
    assert docs["test"] != {(u.source, u.doc) for u in modern.document_split(units, seed=2)["test"]}


# ---------------------------------------------------------------- the build from --debs-dir


def _lo_page(i: int, lang: str) -> bytes:
    words = {
        "en": f"Paragraph number {i} explains how the program works today.",
        "de": f"Absatz Nummer {i} erklärt, wie das Programm heute funktioniert.",
    }[lang]
    return _page(f'<h1 id="hd_id{i}">{"Topic" if lang == "en" else "Thema"} {i}</h1><p id="par_id{i}">{words}</p>')


@pytest.fixture(scope="module")
def debs_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("debs")
    pages = range(150)
    make_package(
        folder, "libreoffice-help-en-us", {f"{libreoffice.EN_ROOT}text/p{i}.html": _lo_page(i, "en") for i in pages}
    )
    make_package(
        folder, "libreoffice-help-de", {f"{libreoffice.DE_ROOT}text/p{i}.html": _lo_page(i, "de") for i in pages}
    )
    mo = make_mo(
        [(f"Open window {i}", f"Fenster {i} öffnen") for i in range(50)]
        + [
            (
                "Paragraph number 3 explains how the program works today.",
                "Absatz Nummer 3 erklärt, wie das Programm heute funktioniert.",
            )
        ]
    )
    for package in catalogs.PACKAGES:
        make_package(folder, package, {"usr/share/locale/de/LC_MESSAGES/x.mo": mo} if package == "inkscape" else {})
    (folder / "test_main_i18n_Translation-en").write_text(TRANSLATION_EN)
    (folder / "test_main_i18n_Translation-de").write_text(TRANSLATION_DE)
    # The reserved Debian Reference, as a user might have it lying around: it must be ignored.
    make_package(
        folder,
        "debian-reference-en",
        {f"{libreoffice.EN_ROOT}text/ref.html": _page('<p id="par_id9">The secret reference line.</p>')},
    )
    return folder


@pytest.fixture(scope="module")
def built_v2(debs_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("v2")
    build_corpus(BuildOptions(out=out, debs_dir=debs_dir, sources=("libreoffice", "ddtp", "ui"), vocab_size=150))
    return out


def _lines(folder: Path, name: str) -> list[str]:
    return (folder / name).read_text(encoding="utf-8").splitlines()


def test_v2_build_from_debs_dir_counts_and_splits(built_v2):
    from hat_engine.data import load_manifest

    m = load_manifest(built_v2)
    assert set(m["splits"]) == {
        "modern_train",
        "ui_train",
        "modern_valid",
        "modern_test",
    }
    assert m["splits"]["modern_test"]["role"] == "test" and set(m["splits"]["modern_test"]["files"]) == {
        "en",
        "de",
        "keys",
    }
    assert m["sources"]["libreoffice"]["units"] == 300 and m["sources"]["libreoffice"]["documents"] == 150
    assert m["sources"]["ddtp"]["pairs"] == 5 and m["sources"]["ui"]["pairs"] == 50
    assert m["sources"]["ui"]["dropped"] == {"duplicate_across_sources": 1}
    assert m["options"]["sources"] == ["libreoffice", "ddtp", "ui"]
    assert any(k.startswith("ddtp:") for k in m["inputs"]) and "deb:libreoffice-help-de" in m["inputs"]
    test_keys = _lines(built_v2, "modern_test.keys")
    assert {k.split(":")[0] for k in test_keys} == {"libreoffice"}  # ddtp's one package is too few to hold out
    assert len({k for k in test_keys}) == 3  # 2 % of 150 pages
    held_en = {normalise(s) for name in ("modern_valid", "modern_test") for s in _lines(built_v2, f"{name}.en")}
    for name in ("modern_train", "ui_train"):
        assert not held_en & {normalise(s) for s in _lines(built_v2, f"{name}.en")}


def test_debian_reference_in_debs_dir_is_ignored(built_v2):
    from hat_engine.data import load_manifest

    m = load_manifest(built_v2)
    assert m["ignored_files"] == ["debian-reference-en_1.0-1_all.deb"]
    assert not any("debian-reference" in k for k in m["inputs"])
    everything = "\n".join(p.read_text(encoding="utf-8") for p in built_v2.glob("*_*.[ed][ne]"))
    assert "secret reference" not in everything and "Systemverwalter" not in everything


def test_v2_second_run_does_no_work_and_missing_packages_skip_their_source(built_v2, debs_dir, tmp_path, monkeypatch):
    opts = BuildOptions(out=built_v2, debs_dir=debs_dir, sources=("libreoffice", "ddtp", "ui"), vocab_size=150)
    assert not build_corpus(opts).rebuilt
    monkeypatch.setattr("hat_engine.data.fetch.shutil.which", lambda _: None)  # a machine without apt
    out = tmp_path / "skip"
    m = build_corpus(BuildOptions(out=out, debs_dir=debs_dir, sources=("libreoffice", "gimp"), vocab_size=150)).manifest
    assert (
        "gimp-help-en: not in" in m["skipped_sources"]["gimp"]
        and "apt-get is not available" in m["skipped_sources"]["gimp"]
    )
    assert set(m["splits"]) == {"modern_train", "modern_valid", "modern_test"}


def test_ddtp_apt_config_is_absolute_under_a_relative_out(tmp_path, monkeypatch):
    """apt-get runs inside the downloads folder: a relative `--out data` once gave it a relative APT_CONFIG
    that did not resolve there, and the DDTP source was skipped."""
    import subprocess

    from hat_engine.data import fetch

    seen = {}

    def fake_apt(cmd, cwd, env, **_):
        seen["config"] = Path(env["APT_CONFIG"])
        seen["readable"] = (Path(cwd) / env["APT_CONFIG"]).is_file()
        return subprocess.CompletedProcess(cmd, 100, "", "E: no network in this test")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(fetch.subprocess, "run", fake_apt)
    monkeypatch.setattr(fetch.shutil, "which", lambda _: "/usr/bin/apt-get")
    Path("data/downloads").mkdir(parents=True)
    with pytest.raises(DataError, match="no network in this test"):
        fetch.fetch_ddtp(Path("data/downloads"), None)
    assert seen["config"].is_absolute() and seen["readable"]
