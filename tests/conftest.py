"""Shared test set-up: one thread, no BentoML telemetry, the repository root on hand.

Under HAT_REQUIRE_REAL=1 (set by .ci/run) a skipped test is a failure: in CI a skip would hide a missing install
step (`make test` installs kubectl, Chromium and the apt lists for Prometheus; tests/install-tools.sh). On a
developer's own machine the skips stay skips, each with its reason.
"""

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


REQUIRE_REAL = os.environ.get("HAT_REQUIRE_REAL") == "1"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if REQUIRE_REAL and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under HAT_REQUIRE_REAL=1, where no proof test may skip: {reason}"
