"""Shared test set-up: one thread, no BentoML telemetry, the repository root on hand."""

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
