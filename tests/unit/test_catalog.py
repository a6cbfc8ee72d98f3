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


def test_merged_catalogs_keep_both_reports_build_records_and_finetuned_weights(tmp_path, tiny_space):
    import argparse

    from hat_engine.catalog.report import write_report
    from search_jobs.catalog_cmd import run_merge

    def built(name: str, profile: str, bleu_shift: float = 0.0):
        folder = tmp_path / name
        folder.mkdir()
        d = _catalog_dict(folder, profile, tiny_space)
        for e in d["entries"]:
            e["id"] = f"{profile}@{e['id']}"
            e["bleu"]["bible_test"] += bleu_shift
        tuned = {"arch_id": "a", "entry": f"{profile}@e1", "minutes": 1, "steps": 2, "target_tokens": 3, "kept": False,
                 "bleu_inherited": {"bible_test": 1.0}, "bleu_finetuned": {"bible_test": 0.5}}  # fmt: skip
        int8 = {"max_bleu_drop": 0.5, "kept": [f"{profile}@e1-int8"], "rejected_bleu_drop": {}}
        d["extra"] = {"sacrebleu": {"bible_test": {"bleu": "nrefs:2", "chrf": "nrefs:2", "sentences": 3}},
                      "dropped_dominated": [f"{profile}@e9"], "finetune": [tuned], "int8": int8,
                      "onnx_format": {profile: f"format-of-{name}"}}  # fmt: skip
        (folder / "finetuned").mkdir()
        (folder / "finetuned" / f"{name}.pt").write_bytes(name.encode())
        d["entries"][0]["artifacts"][0]["materialize"] = {"source": f"finetuned/{name}.pt", "builder": "onnx-graph"}
        catalog = parse_catalog(d)
        save_catalog(catalog, folder)
        baseline = parse_catalog(d).entries[1]
        write_report(folder, catalog, [("depth-2", baseline)], {profile: {"budgets": [1.0]}})
        return folder

    one, two = built("one", "p1"), built("two", "p2")
    out = tmp_path / "merged"
    assert run_merge(argparse.Namespace(dirs=[one, two], out=out)) == 0
    merged = load_catalog(out)
    assert {p.id for p in merged.hardware_profiles} == {"p1", "p2"} and len(merged.entries) == 6
    assert merged.extra["int8"]["kept"] == ["p1@e1-int8", "p2@e1-int8"]
    assert merged.extra["dropped_dominated"] == ["p1@e9", "p2@e9"] and len(merged.extra["finetune"]) == 2
    assert merged.extra["onnx_format"] == {"p1": "format-of-one", "p2": "format-of-two"}
    assert (out / "finetuned/one.pt").read_bytes() == b"one" and (out / "finetuned/two.pt").read_bytes() == b"two"
    report = json.loads((out / "report.json").read_text())
    assert sorted(b["hardware_profile"] for b in report["baselines"]) == ["p1", "p2"]
    assert set(report["search"]) == set(report["comparisons"]) == {"p1", "p2"} and len(report["candidates"]) == 6
    text = (out / "REPORT.md").read_text()
    assert "## p1" in text and "## p2" in text
    assert (out / "pareto-p1.png").is_file() and (out / "pareto-p2.png").is_file()

    again = built("again", "p1", bleu_shift=5.0)  # p1 measured again: its entries, records and report replace
    assert run_merge(argparse.Namespace(dirs=[out, again], out=out)) == 0
    report = json.loads((out / "report.json").read_text())
    p1 = [c["bleu"]["bible_test"] for c in report["candidates"] if c["hardware_profile"] == "p1"]
    assert len(report["candidates"]) == 6 and min(p1) >= 15.0
    extra = load_catalog(out).extra
    assert extra["int8"]["kept"] == ["p2@e1-int8", "p1@e1-int8"]
    assert [r["entry"] for r in extra["finetune"]] == ["p2@e1", "p1@e1"]
    assert extra["onnx_format"] == {"p1": "format-of-again", "p2": "format-of-two"}


def test_merge_refuses_two_different_files_at_one_path_and_copies_nothing(tmp_path, tiny_space):
    """Two builds can ship fine-tuned weights under the same name: the same file (taken with --finetuned-from)
    merges; different weights would silently break the other catalog's checksums, so the merge is refused."""
    import argparse

    from search_jobs.catalog_cmd import run_merge

    def built(name: str, profile: str, weights: bytes):
        folder = tmp_path / name
        folder.mkdir()
        d = _catalog_dict(folder, profile, tiny_space)
        for e in d["entries"]:
            e["id"] = f"{profile}@{e['id']}"
        (folder / "finetuned").mkdir()
        (folder / "finetuned" / "abc.delta.pt").write_bytes(weights)
        d["entries"][0]["artifacts"][0]["materialize"] = {"source": "finetuned/abc.delta.pt", "builder": "onnx-graph"}
        save_catalog(parse_catalog(d), folder)
        return folder

    one, same, other = built("one", "p1", b"tuned"), built("same", "p2", b"tuned"), built("other", "p3", b"else")
    out = tmp_path / "merged"
    with pytest.raises(SystemExit, match=r"other/finetuned/abc.delta.pt and .*one/finetuned/abc.delta.pt differ"):
        run_merge(argparse.Namespace(dirs=[one, other], out=out))
    assert not out.exists() or not any(out.rglob("*.pt"))  # refused before anything was copied
    assert run_merge(argparse.Namespace(dirs=[one, same], out=out)) == 0
    assert (out / "finetuned/abc.delta.pt").read_bytes() == b"tuned" and len(load_catalog(out).entries) == 6
