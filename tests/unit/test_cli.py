"""The `hat` command's error behaviour: one clear line on stderr, non-zero exit, no traceback."""

import subprocess
import sys


def _hat(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "search_jobs.cli", *args], capture_output=True, text=True)


def test_bad_arguments_give_one_line():
    for args in (("nonsense",), ("data", "build", "--vocab-size", "abc"), ()):
        result = _hat(*args)
        assert result.returncode != 0
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "Traceback" not in result.stderr


def test_engine_error_gives_one_line(tmp_path):
    (tmp_path / "file").write_text("")
    result = _hat("data", "build", "--out", str(tmp_path / "file" / "x"), "--bible-wheel", "w", "--ding-deb", "d")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("hat: error: --out")
    assert "Traceback" not in result.stderr


def test_latency_measure_entry_errors_are_one_line(tmp_path):
    both = _hat("latency", "measure", "--samples", "3", "--entry", "x")
    missing = _hat("latency", "measure", "--entry", "x", "--catalog", str(tmp_path / "none"))
    for result in (both, missing):
        assert result.returncode != 0
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "Traceback" not in result.stderr
    assert "not allowed with" in both.stderr
    assert str(tmp_path / "none") in missing.stderr
