"""UI and message catalogs: GNU gettext `.mo` files of German translations, msgid -> first msgstr.

Qt's `.qm` catalogs (`qttranslations5-l10n`) are not read: they are left out of the package list.
"""

import posixpath
import struct

from hat_engine.data.clean import Unit
from hat_engine.data.deb import DebFiles
from hat_engine.errors import DataError

SOURCE = "ui"
UI = True
PACKAGES = (
    "libreoffice-l10n-de",
    "inkscape",
    "gimp-data",
    "gcc-12-locales",
    "freeciv-data",
    "wesnoth-1.16-httt",
    "plasma-workspace-data",
)
MO_MAGIC = {0x950412DE: "<", 0xDE120495: ">"}


def want(path: str) -> bool:
    return path.endswith(".mo") and "/de/LC_MESSAGES/" in path


def read_mo(data: bytes, name: str = "catalog") -> list[tuple[str, str]]:
    """(msgid, first msgstr) of every translated message, in file order; the header entry is left out.

    Context (`msgctxt`) is dropped; plural entries give their singular forms.
    """
    if len(data) < 20:
        raise DataError(f"{name}: too short for a .mo catalog")
    order = MO_MAGIC.get(struct.unpack("<I", data[:4])[0])
    if order is None:
        raise DataError(f"{name}: not a GNU .mo catalog (bad magic)")
    _, count, ids_at, strs_at = struct.unpack(order + "4I", data[4:20])
    out = []
    try:
        for i in range(count):
            id_len, id_pos = struct.unpack(order + "2I", data[ids_at + 8 * i : ids_at + 8 * i + 8])
            str_len, str_pos = struct.unpack(order + "2I", data[strs_at + 8 * i : strs_at + 8 * i + 8])
            msgid = data[id_pos : id_pos + id_len].decode("utf-8")
            msgstr = data[str_pos : str_pos + str_len].decode("utf-8")
            if not msgid:
                continue  # the header
            msgid = msgid.split("\x04", 1)[-1].split("\x00", 1)[0]
            msgstr = msgstr.split("\x00", 1)[0]
            if msgstr:
                out.append((msgid, msgstr))
    except (struct.error, UnicodeDecodeError) as exc:
        raise DataError(f"{name}: corrupt .mo catalog ({exc})") from exc
    return out


def align(debs: dict[str, DebFiles]) -> list[Unit]:
    units = []
    for package in PACKAGES:
        for path, data in sorted(debs[package].items()):
            doc = f"{package}/{posixpath.basename(path)}"
            # A real newline is the `\n` of the .po source: the placeholder filter drops it by that name.
            units += [
                Unit(SOURCE, doc, en.replace("\n", "\\n"), de.replace("\n", "\\n"))
                for en, de in read_mo(data, f"{package}:{path}")
            ]
    return units
