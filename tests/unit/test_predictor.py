"""The latency predictor learns a synthetic latency landscape, round-trips, and adapts to new hardware."""

import random

import pytest
import torch

from hat_engine.config import SearchSpace
from hat_engine.errors import ConfigError, LatencyError, UnusablePredictorError
from hat_engine.latency.predictor import (
    FEATURE_SETS,
    LatencyMLP,
    LatencyPredictor,
    adapt,
    features,
    fit,
    fit_and_pick,
    kendall_tau,
    metrics,
    require_usable,
    split_indices,
)


def synthetic_ms(arch) -> float:
    """A made-up but structured cost: decoder layers dominate (as in autoregressive decoding)."""
    enc = sum(g.ffn_dim / 512 + g.self_heads / 4 for g in arch.encoder_layers) * arch.encoder_embed_dim / 256
    dec = sum(3 * g.ffn_dim / 512 + g.self_heads + g.cross_layers for g in arch.decoder_layers)
    return 5.0 + enc + 4.0 * dec * arch.decoder_embed_dim / 256


@pytest.fixture(scope="module")
def space() -> SearchSpace:
    return SearchSpace((16, 32), (32, 64), (2, 4), (1, 2), (1, 2, 3), (1, 2), qkv_dim=32)


@pytest.mark.integration  # seconds, not milliseconds: runs with the integration tests
def test_fit_predicts_held_out_archs(space):
    rng = random.Random(0)
    archs = [space.sample(rng) for _ in range(160)]
    ms = [synthetic_ms(a) for a in archs]
    for feature_set in FEATURE_SETS:
        predictor = fit(space, archs[:120], ms[:120], feature_set, hidden=64, epochs=800)
        result = metrics(predictor.predict(archs[120:]), ms[120:])
        assert result["mape"] < 8 and result["kendall_tau"] > 0.8, (feature_set, result)


def test_save_load_and_adapt(space, tmp_path):
    rng = random.Random(1)
    archs = [space.sample(rng) for _ in range(80)]
    predictor = fit(space, archs, [synthetic_ms(a) for a in archs], "per_layer", hidden=32, epochs=300)
    predictor.save(tmp_path / "p.pt", extra={"profile_id": "x"})
    loaded = LatencyPredictor.load(tmp_path / "p.pt")
    assert loaded.predict(archs[:5]) == pytest.approx(predictor.predict(archs[:5]), rel=1e-6)
    # "new hardware": everything 2.5x slower plus 3 ms; 10 measurements recover it
    slower = [2.5 * synthetic_ms(a) + 3 for a in archs]
    adapted = adapt(loaded, archs[:10], slower[:10])
    assert (
        metrics(adapted.predict(archs[10:]), slower[10:])["mape"]
        < metrics(loaded.predict(archs[10:]), slower[10:])["mape"] / 3
    )


def test_errors_and_tau(space, tmp_path):
    with pytest.raises(ConfigError):
        features(space.largest(), space, "nope")
    with pytest.raises(ConfigError):
        fit(space, [space.largest()], [1.0])
    assert kendall_tau([1, 2, 3], [10, 20, 30]) == 1.0 and kendall_tau([1, 2, 3], [3, 2, 1]) == -1.0
    (tmp_path / "bad.pt").write_bytes(b"junk")
    with pytest.raises(Exception, match="latency predictor"):
        LatencyPredictor.load(tmp_path / "bad.pt")


def test_predictions_stay_positive_where_a_linear_fit_would_go_negative(space):
    """Latency spans ~10x: a fit on log ms cannot extrapolate below zero, whatever the rows."""
    rng = random.Random(3)
    train = [space.sample(rng) for _ in range(12)]
    # noisy rows where the slow archs are few: a linear-target MLP extrapolated these to negative ms
    ms = [(50.0 if len(a.decoder_layers) > 1 else 1.0) * rng.uniform(0.5, 2.0) for a in train]
    probe = [space.sample(rng) for _ in range(300)] + [space.smallest(), space.largest()]
    for model in ("mlp", "ridge", "median"):
        predictor = fit(space, train, ms, "per_layer", model, hidden=64, epochs=300)
        assert predictor.log_target and min(predictor.predict(probe)) > 0, model


def test_a_prediction_that_is_not_a_positive_number_is_an_error(space):
    n = len(features(space.largest(), space, "hat"))
    ones = torch.ones(n)
    # a format-1 (linear-target) predictor shifted below zero, as an old or damaged file could be
    linear = LatencyPredictor(space, "hat", LatencyMLP(n, 8, 2), 0 * ones, ones, 0.0, 1.0, log_target=False,
                              offset=-1000.0, extra={"profile_id": "cpu-test-1t"})  # fmt: skip
    with pytest.raises(LatencyError, match="cpu-test-1t predicted -"):
        linear.predict([space.largest()])
    nan = LatencyPredictor(space, "hat", LatencyMLP(n, 8, 2), 0 * ones, ones, float("nan"), 1.0)
    with pytest.raises(LatencyError, match="nan"):
        nan.predict([space.smallest()])
    for bad in ([], [1.0, float("nan")], [0.0, 3.0], [-2.0, 4.0]):
        with pytest.raises((LatencyError, ConfigError)):
            fit(space, [space.smallest(), space.largest()][: max(len(bad), 1)], bad, "hat", "ridge")


@pytest.mark.integration  # seconds, not milliseconds: runs with the integration tests
def test_fit_and_pick_keeps_a_simple_model_when_the_mlp_does_worse(space):
    """Latency that does not depend on the arch (pure noise): nothing beats the median on held-out rows, and the
    report says the MLP lost."""
    rng = random.Random(5)
    archs = [space.sample(rng) for _ in range(40)]
    ms = [20.0 * rng.uniform(0.8, 1.25) for _ in archs]
    _, test = split_indices(len(archs), 10)
    predictor, report = fit_and_pick(space, archs, ms, test, epochs=300)
    assert set(report.candidates) == {"mlp/hat", "ridge/hat", "mlp/per_layer", "ridge/per_layer", "median"}
    assert not report.kept.startswith("mlp/") and "the MLP did worse" in report.note
    assert report.metrics == min(report.candidates.values(), key=lambda m: m["mape"])
    # structured latency: the landscape is learnable and the kept model ranks it well
    ms = [synthetic_ms(a) for a in archs]
    predictor, report = fit_and_pick(space, archs, ms, test, epochs=600)
    assert report.metrics["kendall_tau"] > 0.8 and report.metrics["mape"] < 10, report
    assert predictor.predict([archs[i] for i in test]) == pytest.approx(report.predicted)
    with pytest.raises(ConfigError, match="held-out"):
        fit_and_pick(space, archs, ms, test[:3])


def test_an_unusable_predictor_is_refused_with_its_figures(space):
    rng = random.Random(2)
    archs = [space.sample(rng) for _ in range(20)]
    predictor = fit(space, archs, [synthetic_ms(a) for a in archs], "hat", "ridge")
    with pytest.raises(UnusablePredictorError, match="no held-out Kendall tau"):
        require_usable(predictor)
    predictor.extra = {"profile_id": "cpu-x86_64-avx512bf16-1t-onnxruntime", "kendall_tau": -0.111,
                       "mape": 640.03, "n_test": 10}  # fmt: skip
    with pytest.raises(UnusablePredictorError) as caught:
        require_usable(predictor, name="p.pt")
    message = str(caught.value)
    for expected in ("p.pt", "cpu-x86_64-avx512bf16-1t-onnxruntime", "-0.111 < 0.5", "640.0 %", "10 held-out",
                     "--samples", "--runs"):  # fmt: skip
        assert expected in message
    assert "\n" not in message
    predictor.extra["kendall_tau"] = 0.72
    require_usable(predictor)  # passes
    with pytest.raises(UnusablePredictorError):
        require_usable(predictor, min_tau=0.9)
