"""The pipeline presets are typed: both shipped presets parse, and an unknown or missing key, or a value no stage
accepts, is a clear error when the preset is read."""

import pytest

from hat_engine.errors import ConfigError
from search_jobs.pipeline import PRESETS, PipelineConfig


def test_shipped_presets_parse():
    quick = PipelineConfig.from_yaml(PRESETS["quick"].read_text())
    full = PipelineConfig.from_yaml(PRESETS["full"].read_text())
    assert quick.slice is not None and full.slice is None
    assert quick.latency.samples == 64 and quick.fit.min_tau == 0.5 and quick.catalog.finetune_steps == 4
    assert full.train == {"config": "configs/supernet.yaml"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("fit: {", "fit: {typo: 1, "), r"unknown key 'pipeline preset: fit.typo' in FitSection"),
        (("search: {budgets: 3, ", "search: {"), r"search is missing required key\(s\) \['budgets'\]"),
        (("train: {", "train: {learning_rate: 1, "), r"train: unknown key\(s\) \['learning_rate'\]"),
        (("space:", "spaec:"), r"unknown key 'pipeline preset.spaec' in PipelineConfig"),
        (("runs: 9", "runs: 0"), r"latency: samples and runs must be >= 1"),
        (("min_tau: 0.5", "min_tau: 2"), r"fit: epochs \(400\) must be >= 1 and min_tau \(a Kendall tau\) within"),
        (("rounds: 2", "rounds: 0"), r"catalog: runs \(2\) and rounds \(0\) must be at least 1"),
        (("vocab_size: 1000", "vocab_size: 50"), r"slice: .* vocab_size 50 within 1000..64000"),
    ],
)
def test_unknown_or_missing_keys_and_bad_values_are_errors(change, message):
    text = PRESETS["quick"].read_text()
    assert change[0] in text
    with pytest.raises(ConfigError, match=message):
        PipelineConfig.from_yaml(text.replace(change[0], change[1], 1))
