"""The shipped catalog (catalog/): valid, every file checksummed, >= 5 entries per measured profile, none
dominated, and its fastest entry materialises and translates."""

import pytest

from hat_engine.catalog.check import unreferenced_weights, validate_catalog
from hat_engine.catalog.schema import dominated
from hat_engine.data.tokenizer import Tokenizer
from hat_engine.model.translate import translate_texts
from hat_engine.serving.pool import TranslatorPool

pytestmark = pytest.mark.integration


def test_shipped_catalog_is_valid_and_spans_each_profile(repo_root, tmp_path):
    folder = repo_root / "catalog"
    catalog, problems = validate_catalog(folder)
    assert not problems, problems
    assert unreferenced_weights(folder, catalog) == []  # no weights shipped for nothing
    assert len(catalog.hardware_profiles) >= 2
    for profile in catalog.hardware_profiles:
        entries = catalog.entries_for(profile.id)
        assert len(entries) >= 6, (profile.id, len(entries))
        assert not dominated(entries), profile.id
        assert profile.predictor is not None and profile.predictor.n_test >= 100
    fastest = catalog.entries_for(catalog.hardware_profiles[0].id)[0]
    pool = TranslatorPool(folder, catalog, tmp_path / "cache", "onnxruntime", threads=1)
    model = pool.load(fastest)  # materialised from the shipped supernet, both sha256 checked
    (out,) = translate_texts(model, Tokenizer(folder / "spm.model"), ["The house is small."], beam=4)
    assert out.text.strip() and out.tokens > 0


def test_torch_backend_serves_the_shipped_catalog_over_http(repo_root, tmp_path):
    """HAT_BACKEND=torch (the gpu overlay's backend): the shipped catalog lists ONNX artifacts only; torch models
    are cut from the same recipes, sha256-checked, int8 entries' unquantised, so every entry is servable."""
    import httpx

    from harness.server import Server, server_env

    env = server_env(repo_root / "catalog", tmp_path, HAT_BACKEND="torch", HAT_SLA_MS="100000")
    with Server(env, tmp_path / "torch.log") as s:
        models = httpx.get(s.url + "/models", timeout=10).json()
        r = httpx.post(s.url + "/translate", json={"q": "The house is small.", "source": "en", "target": "de"},
                       timeout=60)  # fmt: skip
    assert models["backend"] == "torch" and models["hardware_profile"].endswith("-torch")
    status = {e["id"]: e["status"] for e in models["entries"]}
    assert set(status.values()) == {"servable"}, status
    assert r.status_code == 200 and r.json()["translatedText"].strip()
    assert r.json()["model"] == models["selected"]["entry_id"]
