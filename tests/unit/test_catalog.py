"""Catalog records: strict parsing with named fields, round-trip, checksums, dominance, merge."""

import json

import pytest

from hat_engine.catalog.schema import (
    CatalogError,
    FileRef,
    dominated,
    load_catalog,
    merge,
    parse_catalog,
    save_catalog,
    sha256_file,
    verify_file,
)  # fmt: skip


def _catalog_dict(tmp_path, profile="cpu-x86_64-avx2-1t-onnxruntime", space=None) -> dict:
    (tmp_path / "spm.model").write_bytes(b"tok")
    (tmp_path / "supernet.pt").write_bytes(b"net")
    arch = space.largest().to_dict()
    entry = lambda i, p95, bleu: {  # noqa: E731
        "id": f"e{i}", "hardware_profile": profile, "latency_budget_ms": 100.0, "arch": dict(arch), "params": 10,
        "latency_ms": {"p50": p95 - 1, "p95": p95}, "predicted_latency_ms": p95, "bleu": {"bible_test": bleu},
        "chrf": {"bible_test": 40.0}, "artifacts": [{"format": "onnx", "path": "x", "sha256": "0" * 64}],
    }  # fmt: skip
    return {
        "schema_version": 1, "language_pair": "en-de",
        "tokenizer": {"path": "spm.model", "sha256": sha256_file(tmp_path / "spm.model")},
        "supernet": {"path": "supernet.pt", "sha256": sha256_file(tmp_path / "supernet.pt")},
        "reference_workload": {"batch_size": 1, "source_tokens": 30, "target_tokens": 30, "beam": 4},
        "hardware_profiles": [{"id": profile, "fingerprint": {"threads": 1}}],
        "entries": [entry(1, 50.0, 10.0), entry(2, 80.0, 12.0), entry(3, 90.0, 11.0)],
    }  # fmt: skip


def test_weights_no_entry_uses_are_named(tmp_path, tiny_space):
    from hat_engine.catalog.check import unreferenced_weights

    d = _catalog_dict(tmp_path, space=tiny_space)
    assert unreferenced_weights(tmp_path, parse_catalog(d)) == []  # no finetuned/ folder at all
    (tmp_path / "finetuned").mkdir()
    for name in ("used.pt", "stale.pt"):
        (tmp_path / "finetuned" / name).write_bytes(name.encode())
    d["entries"][0]["artifacts"][0]["materialize"] = {"source": "finetuned/used.pt", "builder": "onnx-graph"}
    assert unreferenced_weights(tmp_path, parse_catalog(d)) == ["finetuned/stale.pt"]


def test_round_trip_and_dominance(tmp_path, tiny_space):
    catalog = parse_catalog(_catalog_dict(tmp_path, space=tiny_space))
    save_catalog(catalog, tmp_path)
    again = load_catalog(tmp_path)
    assert again == catalog and again.entries[0].arch == tiny_space.largest()
    assert dominated(list(catalog.entries)) == [("e3", "e2")]
    verify_file(tmp_path, catalog.tokenizer, "tokenizer")
    (tmp_path / "spm.model").write_bytes(b"altered")
    with pytest.raises(CatalogError, match="sha256"):
        verify_file(tmp_path, catalog.tokenizer, "tokenizer")
    with pytest.raises(CatalogError, match="missing"):
        verify_file(tmp_path, FileRef("nope", "0"), "x")


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d.update(bogus=1), "unknown key"),
        (lambda d: d["entries"][0].pop("bleu"), r"entries\[0\]: missing key"),
        (lambda d: d["entries"][1]["arch"].update(encoder_embed_dim="wide"), r"entries\[1\].arch"),
        (lambda d: d["entries"][0].update(hardware_profile="gpu"), "not in hardware_profiles"),
        (lambda d: d.update(schema_version=9), "schema_version"),
        (lambda d: d["entries"][2].update(id="e1"), "unique"),
    ],
)
def test_schema_errors_name_the_field(tmp_path, tiny_space, mutate, message):
    d = _catalog_dict(tmp_path, space=tiny_space)
    mutate(d)
    with pytest.raises(CatalogError, match=message):
        parse_catalog(json.loads(json.dumps(d)))


def test_merge(tmp_path, tiny_space):
    a = parse_catalog(_catalog_dict(tmp_path, "p1", tiny_space))
    b_dict = _catalog_dict(tmp_path, "p2", tiny_space)
    for e in b_dict["entries"]:
        e["id"] += "-p2"
    merged = merge([a, parse_catalog(b_dict)])
    assert [p.id for p in merged.hardware_profiles] == ["p1", "p2"] and len(merged.entries) == 6
    assert len(merge([merged, a]).entries) == 6  # re-measured profile replaces its entries
    with pytest.raises(CatalogError, match="nothing"):
        merge([])
