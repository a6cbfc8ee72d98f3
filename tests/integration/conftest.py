"""Integration fixtures: the real corpus, built once per session by the `hat` command into `data/`."""

import json
import subprocess
import sys

import pytest

# CI builds Bible, Ding and one small real modern source (the man pages: 13 MB of packages): the full corpus v2
# takes far longer on a 2-core machine (docs/corpus.md). A fuller build already in data/ is kept as it is.
CI_SOURCES = ("bible", "ding", "manpages")


def corpus_sources(out) -> list[str]:
    """The sources to build in `out`: those of the build already there when it holds CI's, else CI's."""
    try:
        built = json.loads((out / "manifest.json").read_text())["options"]["sources"]
    except (OSError, ValueError, KeyError, TypeError):
        built = []
    return built if set(CI_SOURCES) <= set(built) else list(CI_SOURCES)


@pytest.fixture(scope="session")
def real_data(repo_root):
    out = repo_root / "data"
    sources = ",".join(corpus_sources(out))
    result = subprocess.run(
        [sys.executable, "-m", "search_jobs.cli", "data", "build", "--out", str(out), "--sources", sources],
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return out
