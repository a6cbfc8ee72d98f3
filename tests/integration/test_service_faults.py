"""A BentoML worker killed mid-load: requests recover, nothing hangs, the worker comes back (bench/robustness.py
runs the same longer on the shipped catalog)."""

import pytest

from harness.faults import kill_worker_mid_load
from harness.fixture_catalog import build_fixture_catalog, synthetic_lines

pytestmark = pytest.mark.integration


def test_killing_a_worker_mid_load_loses_few_requests_and_hangs_none(tmp_path):
    build_fixture_catalog(tmp_path / "catalog", fake_p95_ms=[5.0, 10.0, 20.0, 40.0])
    result = kill_worker_mid_load(tmp_path / "catalog", tmp_path, synthetic_lines(50), rate=4.0, seconds=12.0)
    assert result["workers_before"] == 2 and result["killed_pid"] is not None, result
    assert result["hung"] == 0 and result["ok"] >= 0.7 * result["requests"], result
    assert result["workers_after"] == 2 and result["ready_after"] and result["translate_after"] == 200, result
    assert result["wall_s"] < 12.0 + 35.0  # no request waited out the client timeout
