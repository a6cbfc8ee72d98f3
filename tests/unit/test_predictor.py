"""The latency predictor learns a synthetic latency landscape, round-trips, and adapts to new hardware."""

import random

import pytest

from hat_engine.config import SearchSpace
from hat_engine.errors import ConfigError
from hat_engine.predictor import FEATURE_SETS, LatencyPredictor, adapt, features, fit, kendall_tau, metrics


def synthetic_ms(arch) -> float:
    """A made-up but structured cost: decoder layers dominate (as in autoregressive decoding)."""
    enc = sum(g.ffn_dim / 512 + g.self_heads / 4 for g in arch.encoder_layers) * arch.encoder_embed_dim / 256
    dec = sum(3 * g.ffn_dim / 512 + g.self_heads + g.cross_layers for g in arch.decoder_layers)
    return 5.0 + enc + 4.0 * dec * arch.decoder_embed_dim / 256


@pytest.fixture(scope="module")
def space() -> SearchSpace:
    return SearchSpace((16, 32), (32, 64), (2, 4), (1, 2), (1, 2, 3), (1, 2), qkv_dim=32)


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
