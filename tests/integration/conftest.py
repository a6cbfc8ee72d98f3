"""Integration fixtures: the real corpus, built once per session by the `hat` command into `data/`."""

import subprocess
import sys

import pytest


@pytest.fixture(scope="session")
def real_data(repo_root):
    out = repo_root / "data"
    result = subprocess.run(
        [sys.executable, "-m", "search_jobs.cli", "data", "build", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return out
