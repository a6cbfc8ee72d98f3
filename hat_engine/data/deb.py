"""Read files out of a Debian package without dpkg: an `ar` archive holding a `data.tar.{xz,gz,bz2}`."""

import io
import lzma
import posixpath
import tarfile
import zlib
from collections.abc import Callable
from pathlib import Path

from hat_engine.errors import DataError

# A .deb's files, by path inside the package without the leading "./" (e.g. "usr/share/man/man1/ls.1.gz").
DebFiles = dict[str, bytes]


def ar_members(data: bytes, name: str) -> dict[str, bytes]:
    """The members of a Debian package (an `ar` archive)."""
    if not data.startswith(b"!<arch>\n"):
        raise DataError(f"{name} is not a Debian package (no ar header); delete it and run again")
    members, pos = {}, 8
    while pos + 60 <= len(data):
        header = data[pos : pos + 60]
        member = header[:16].decode("ascii", "replace").strip().rstrip("/")
        try:
            size = int(header[48:58].decode("ascii").strip())
        except ValueError as exc:
            raise DataError(f"{name}: corrupt ar member header at byte {pos}") from exc
        members[member] = data[pos + 60 : pos + 60 + size]
        pos += 60 + size + (size % 2)
    return members


def read_deb(deb: Path, want: Callable[[str], bool]) -> DebFiles:
    """The regular files of `deb` whose path `want` accepts; symlinks to such files are read as their target."""
    try:
        data = Path(deb).read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {deb}: {exc}") from exc
    payload = next((v for k, v in ar_members(data, str(deb)).items() if k.startswith("data.tar")), None)
    if payload is None:
        raise DataError(f"{deb}: no data.tar.* member; is it a Debian binary package?")
    files: DebFiles = {}
    links: dict[str, str] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(payload), mode="r|*") as tar:
            for member in tar:
                path = member.name.removeprefix("./")
                if member.issym() and want(path):
                    links[path] = posixpath.normpath(posixpath.join(posixpath.dirname(path), member.linkname))
                elif member.isfile() and want(path):
                    raw = tar.extractfile(member)
                    assert raw is not None
                    files[path] = raw.read()
    except (tarfile.TarError, lzma.LZMAError, zlib.error, EOFError, OSError) as exc:
        raise DataError(f"{deb}: corrupt package payload ({exc}); delete it and run again") from exc
    for path, target in links.items():
        if target.lstrip("/") in files:
            files[path] = files[target.lstrip("/")]
    return files


def package_name(deb: Path) -> str:
    """`libreoffice-help-de` of `libreoffice-help-de_4%3a7.4.7-1_all.deb` (Debian's file naming)."""
    return Path(deb).name.split("_", 1)[0]
