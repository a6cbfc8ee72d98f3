"""The `hat` command's error behaviour: one clear line on stderr, non-zero exit, no traceback."""

import subprocess
import sys

import pytest


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


@pytest.mark.integration  # seconds, not milliseconds: runs with the integration tests
def test_latency_measure_entry_errors_are_one_line(tmp_path):
    both = _hat("latency", "measure", "--samples", "3", "--entry", "x")
    missing = _hat("latency", "measure", "--entry", "x", "--catalog", str(tmp_path / "none"))
    for result in (both, missing):
        assert result.returncode != 0
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "Traceback" not in result.stderr
    assert "not allowed with" in both.stderr
    assert str(tmp_path / "none") in missing.stderr


def _dataset(path, space, ms_of, n=40, seed=0):
    """A latency dataset file as `hat latency measure` writes it, with made-up p50s."""
    import json
    import random

    from hat_engine.latency.dataset import DATASET_FORMAT
    from hat_engine.latency.timing import REFERENCE_WORKLOAD

    rng = random.Random(seed)
    profile = {"profile_id": "cpu-test-1t-onnxruntime", "threads": 1, "backend": "onnxruntime"}
    lines = [{"format": DATASET_FORMAT, "profile": profile, "workload": REFERENCE_WORKLOAD.to_dict(),
              "space": space.to_dict(), "seed": 1}]  # fmt: skip
    for i in range(n):
        arch = space.sample(rng)
        lines.append({"index": i, "arch_id": arch.arch_id(), "arch": arch.to_dict(), "p50": ms_of(arch, rng)})
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))


@pytest.mark.integration  # seconds, not milliseconds: runs with the integration tests
def test_latency_fit_compares_models_and_search_refuses_a_predictor_that_cannot_rank(tmp_path, tiny_space, capsys):
    from search_jobs.cli import main

    def structured(arch, rng):
        return 5.0 + 6.0 * len(arch.decoder_layers) + arch.decoder_embed_dim / 16 + rng.uniform(-0.2, 0.2)

    def noise(arch, rng):
        return rng.uniform(10.0, 30.0)

    for name, ms_of in (("structured", structured), ("noise", noise)):
        _dataset(tmp_path / f"{name}.jsonl", tiny_space, ms_of)
        code = main(["latency", "fit", "--data", str(tmp_path / f"{name}.jsonl"), "--out", str(tmp_path / f"{name}.pt"),
                     "--test", "12", "--epochs", "150"])  # fmt: skip
        out, err = capsys.readouterr()
        assert code == 0, err
        for candidate in ("mlp/hat", "ridge/per_layer", "median", "<- kept"):
            assert candidate in out
        assert ("will refuse" in err) == (name == "noise"), (name, out, err)
    search = ["search", "--budgets", "40", "--out", str(tmp_path / "s.json"), "--supernet", str(tmp_path / "none.pt")]
    assert main([*search, "--predictor", str(tmp_path / "noise.pt")]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "cpu-test-1t-onnxruntime" in lines[0] and "Kendall tau" in lines[0], lines
    assert "--samples" in lines[0] and "Traceback" not in lines[0]
    try:
        main([*search, "--predictor", str(tmp_path / "noise.pt"), "--min-tau", "2"])
    except SystemExit as exc:
        assert "[-1, 1]" in str(exc)
    else:
        raise AssertionError("--min-tau 2 was accepted")


def test_the_pipeline_measures_more_before_it_refuses_a_predictor(tmp_path, tiny_space, monkeypatch, capsys):
    """Below the tau floor the pipeline doubles the dataset and refits (`latency.extend` times), then stops with
    the predictor's one-line refusal; measuring and fitting are stood in for by what they would write."""
    import dataclasses

    import torch

    from hat_engine.latency.predictor import LatencyMLP, LatencyPredictor, features
    from search_jobs import pipeline

    calls, tau_at = [], {}

    def fake_measure(lat, samples, supernet, out):
        calls.append("measure")
        out.mkdir(exist_ok=True)
        (out / "cpu-test-1t-onnxruntime.jsonl").write_text("")
        tau_at["samples"] = samples

    def fake_fit(dataset, out, fit):
        calls.append("fit")
        n = len(features(tiny_space.largest(), tiny_space, "hat"))
        ones = torch.ones(n)
        predictor = LatencyPredictor(tiny_space, "hat", LatencyMLP(n, 4, 2), 0 * ones, ones, 0.0, 1.0)
        tau = tau_at["good_from"] <= tau_at["samples"]
        out.parent.mkdir(parents=True, exist_ok=True)
        predictor.save(out, {"profile_id": "cpu-test-1t-onnxruntime", "kendall_tau": 0.8 if tau else 0.1,
                             "mape": 9.0, "n_test": 16})  # fmt: skip

    monkeypatch.setattr(pipeline, "_measure", fake_measure)
    monkeypatch.setattr(pipeline, "_fit", fake_fit)
    quick = pipeline.PipelineConfig.from_yaml(pipeline.PRESETS["quick"].read_text())
    preset = dataclasses.replace(
        quick,
        latency=pipeline.LatencySection(samples=64, targets="onnxruntime:1", runs=5, warmup=1),
        fit=pipeline.FitSection(test=16, epochs=10, features="hat", min_tau=0.5),
    )
    tau_at["good_from"] = 256
    profiles = pipeline._measure_and_fit(preset, tmp_path, tmp_path / "supernet.pt")
    assert list(profiles) == ["cpu-test-1t-onnxruntime"] and tau_at["samples"] == 256
    assert calls.count("measure") == 3 and calls.count("fit") == 3
    assert capsys.readouterr().out.count("below the Kendall tau floor 0.5; measuring") == 2

    calls.clear()
    (tmp_path / "predictors" / "cpu-test-1t-onnxruntime.pt").unlink()
    tau_at["good_from"] = 10**9
    with pytest.raises(SystemExit, match="pipeline stopped before the search: .*Kendall tau 0.100 < 0.5"):
        pipeline._measure_and_fit(preset, tmp_path, tmp_path / "supernet.pt")
    assert calls.count("fit") == 3


@pytest.mark.integration  # builds and serves a fixture catalog: seconds
def test_translate_from_a_catalog_by_sla_or_entry(tmp_path):
    """`hat translate --catalog DIR [--sla-ms N | --entry ID]` (CONTRACT): the entry `hat serve` would choose on
    this host, or the one named; blank lines stay blank; a wrong entry or mixed modes are one-line errors."""
    from harness.fixture_catalog import build_fixture_catalog
    from hat_engine.hardware import detect

    host = detect("onnxruntime", 1, probe_cuda=False).profile_id
    catalog = build_fixture_catalog(tmp_path / "cat", fake_p95_ms=[10.0, 20.0, 30.0, 40.0], host_profile=host)
    ids = [e.id for e in catalog.entries_for(host)]

    def translate(*args: str, text: str = "the house is small\n\nwe go home\n") -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "search_jobs.cli", "translate", "--catalog", str(tmp_path / "cat"), *args]
        return subprocess.run(cmd, input=text, capture_output=True, text=True, timeout=300)

    by_sla = translate("--sla-ms", "25")
    assert by_sla.returncode == 0, by_sla.stderr[-800:]
    lines = by_sla.stdout.split("\n")
    assert len(lines) == 4 and lines[1] == "" and lines[0] and lines[2]
    assert f"with catalog entry {ids[1]} (SLA 25 ms)" in by_sla.stderr  # 20 ms meets 25 ms, 30 ms does not
    by_entry = translate("--entry", ids[3], "--beam", "1")
    assert by_entry.returncode == 0 and f"with catalog entry {ids[3]}" in by_entry.stderr
    wrong = translate("--entry", "nope")
    assert wrong.returncode != 0 and wrong.stderr.strip().splitlines()[-1].startswith("hat: error: no entry 'nope'")
    both = translate("--entry", ids[0], "--sla-ms", "5")
    assert both.returncode == 2 and "not allowed with argument" in both.stderr
    misplaced = translate("--entry", ids[0], "--calibrate", "always")
    assert misplaced.returncode != 0 and "--calibrate always goes with a catalog choice" in misplaced.stderr

    # A catalog whose figures are far off this host (5-8 s): by them no entry meets 1 s, so the fastest is served;
    # timed in this sitting (`--calibrate always`), every entry (tiny models) does, and the best one is served.
    build_fixture_catalog(tmp_path / "slow", fake_p95_ms=[5000.0, 6000.0, 7000.0, 8000.0], host_profile=host)
    as_recorded = translate("--sla-ms", "1000", "--catalog", str(tmp_path / "slow"))
    assert as_recorded.returncode == 0 and f"with catalog entry {ids[0]} (SLA 1000 ms (not met))" in as_recorded.stderr
    calibrated = translate("--sla-ms", "1000", "--calibrate", "always", "--catalog", str(tmp_path / "slow"))
    assert calibrated.returncode == 0 and f"with catalog entry {ids[3]} (SLA 1000 ms)" in calibrated.stderr
    assert "calibrating the catalog's own profile" in calibrated.stderr
