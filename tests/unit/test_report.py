"""Pareto front and the searched-vs-baseline comparison of the catalog report."""

import pytest

from hat_engine.catalog.report import compare, pareto
from hat_engine.catalog.schema import CatalogEntry


def _entry(name, p50, bleu, tiny_space):
    return CatalogEntry(name, "p", 0.0, tiny_space.smallest(), 1, {"p50": p50, "p95": p50}, p50,
                        {"bible_test": bleu}, {"bible_test": 40.0}, ())  # fmt: skip


def test_pareto_drops_dominated_points():
    assert pareto([(10, 5), (20, 4), (30, 8), (25, 9)]) == [(10, 5), (25, 9)]


def test_compare_interpolates_both_ways(tiny_space):
    searched = [_entry("a", 10, 10.0, tiny_space), _entry("b", 30, 20.0, tiny_space)]
    rows = compare(searched, {"base": _entry("base", 20, 12.0, tiny_space), "slow": _entry("s", 60, 25.0, tiny_space)})
    base, slow = rows
    assert base["searched_bleu_at_equal_latency"] == pytest.approx(15.0) and base["bleu_gain"] == pytest.approx(3.0)
    assert base["searched_latency_at_equal_bleu_ms"] == pytest.approx(14.0)
    assert base["speedup_at_equal_bleu"] == pytest.approx(20 / 14, rel=1e-2)
    assert slow["bleu_gain"] is None and slow["speedup_at_equal_bleu"] is None  # outside the searched range


def test_report_sections_int8_finetune_and_shapes(tiny_space, tmp_path):
    from hat_engine.catalog.report import arch_summary, is_int8, write_report
    from hat_engine.catalog.schema import Artifact, Catalog, FileRef, HardwareProfileRecord
    from hat_engine.latency.timing import REFERENCE_WORKLOAD

    def entry(name, profile, p50, bleu, fmt="onnx", arch=None):
        return CatalogEntry(name, profile, 50.0, arch or tiny_space.smallest(), 1, {"p50": p50, "p95": p50}, p50,
                            {"bible_test": bleu}, {"bible_test": 40.0}, (Artifact(fmt, "x", "s"),))  # fmt: skip

    entries = (entry("a@1", "p1", 10, 10.0), entry("a@2", "p1", 20, 12.0, arch=tiny_space.largest()),
               entry("a@1-int8", "p1", 7, 9.8, "onnx-int8"), entry("b@1", "p2", 12, 10.0))  # fmt: skip
    profiles = (HardwareProfileRecord("p1", {}), HardwareProfileRecord("p2", {}))
    bleu = {"bleu_inherited": {"bible_test": 11.0}, "bleu_finetuned": {"bible_test": 12.0}}  # a@2 is fine-tuned
    finetune = [{"arch_id": tiny_space.largest().arch_id(), "entry": "a@2", "minutes": 8, "steps": 100,
                 "target_tokens": 1000, **bleu, "kept": True}]  # fmt: skip
    catalog = Catalog("en-de", FileRef("t", "s"), FileRef("s", "s"), REFERENCE_WORKLOAD, profiles, entries,
                      extra={"finetune": finetune, "int8": {"kept": ["a@1-int8"]}})  # fmt: skip
    baselines = [("depth-1", entry("p1@baseline-depth-1", "p1", 15, 10.5))]
    report = write_report(tmp_path, catalog, baselines, {})
    assert is_int8(entries[2]) and not is_int8(entries[0])
    # fp32 only, and a@2 at its inherited 11.0, as the baselines are built
    assert report["comparisons"]["p1"][0]["searched_bleu_at_equal_latency"] == pytest.approx(10.5)
    text = (tmp_path / "REPORT.md").read_text()
    assert "Inherited vs fine-tuned" in text and "11.00 | 12.00" in text
    assert "Architectures found on every profile: 1 of 2 (p1), 1 (p2)." in text
    assert arch_summary(entries[0]).startswith("enc ") and "cross" in arch_summary(entries[0])
    assert (tmp_path / "pareto-p1.png").is_file()
    # every candidate the search produced, dominated ones included, is what the baselines are compared with
    extra = entry("a@3", "p1", 15, 11.5, arch=tiny_space.sample(__import__("random").Random(3)))
    report = write_report(tmp_path, catalog, baselines, {}, candidates=[*entries, extra])
    assert report["comparisons"]["p1"][0]["searched_bleu_at_equal_latency"] == pytest.approx(11.5)
    assert len(report["candidates"]) == 5
    # the shapes section lists every searched arch of a profile, not only the ones the catalog kept
    assert "Architectures found on every profile: 1 of 3 (p1), 1 (p2)." in (tmp_path / "REPORT.md").read_text()


def test_finetuned_searched_entries_meet_finetuned_baselines(tiny_space, tmp_path):
    import random

    from hat_engine.catalog.report import finetuned_comparison, write_report
    from hat_engine.catalog.schema import Artifact, Catalog, FileRef, HardwareProfileRecord
    from hat_engine.latency.timing import REFERENCE_WORKLOAD

    def entry(name, p50, bleu, arch, fmt="onnx"):
        return CatalogEntry(name, "p", 0.0, arch, 1, {"p50": p50, "p95": p50}, p50, {"bible_test": bleu},
                            {"bible_test": 40.0}, (Artifact(fmt, "x", "s"),))  # fmt: skip

    big, small = tiny_space.largest(), tiny_space.smallest()
    mid = next(a for a in (tiny_space.sample(random.Random(i)) for i in range(50)) if a not in (big, small))
    searched = [entry("inh", 10, 30.0, big), entry("ft1", 10, 14.0, small), entry("ft2", 30, 20.0, mid),
                entry("ft2-int8", 8, 19.0, mid, "onnx-int8")]  # fmt: skip

    def record(arch, tuned_bleu, kept):  # what finetune_entries records
        return {
            "arch_id": arch.arch_id(),
            "entry": "e",
            "minutes": 1.0,
            "steps": 4,
            "target_tokens": 100,
            "bleu_inherited": {"bible_test": 9.0},
            "bleu_finetuned": {"bible_test": tuned_bleu},
            "kept": kept,
        }

    # big's inherited 30.0 beat its fine-tuned 15.0, so the build kept its inherited weights: fine-tuned against
    # fine-tuned, it counts with 15.0
    records = [record(small, 14.0, True), record(mid, 20.0, True), record(big, 15.0, False)]
    baselines = {"depth-3": entry("base", 20, 12.0, big)}
    tuned = {"depth-3": {"bleu_finetuned": {"bible_test": 16.0}}}
    (row,) = finetuned_comparison(searched, baselines, tuned, records)
    # the front: big (15.0) and small (14.0) at 10 ms, mid (20.0) at 30 ms, all fp32 and fine-tuned; the int8 twin
    # is not in it, and the baseline counts with its tuned 16.0 BLEU
    assert row["bleu"] == 16.0 and row["searched_bleu_at_equal_latency"] == pytest.approx(17.5)
    assert row["searched_latency_at_equal_bleu_ms"] == pytest.approx(14.0) and row["bleu_gain"] == pytest.approx(1.5)
    assert finetuned_comparison(searched, baselines, {}, records) == []
    assert finetuned_comparison(searched, baselines, tuned, []) == []  # nothing fine-tuned
    catalog = Catalog("en-de", FileRef("t", "s"), FileRef("s", "s"), REFERENCE_WORKLOAD,
                      (HardwareProfileRecord("p", {}),), tuple(searched[1:3]), extra={"finetune": records})  # fmt: skip
    report = write_report(tmp_path, catalog, [("depth-3", baselines["depth-3"])], {}, searched, tuned)
    assert report["comparisons_finetuned"]["p"] == [row] and report["finetuned_baselines"] == tuned
    assert "Fine-tuned vs fine-tuned" in (tmp_path / "REPORT.md").read_text()


def test_report_shows_each_profiles_predictor_error_beside_its_measured_test_retest(tiny_space, tmp_path):
    from pathlib import Path

    from hat_engine.catalog.report import write_report
    from hat_engine.catalog.schema import Artifact, Catalog, FileRef, HardwareProfileRecord, PredictorRef
    from hat_engine.latency.retest import RetestError, load_retests, save_retest
    from hat_engine.latency.timing import REFERENCE_WORKLOAD

    e = CatalogEntry("p1@a", "p1", 50.0, tiny_space.smallest(), 1, {"p50": 10.0, "p95": 12.0}, 10.0,
                     {"bible_test": 10.0}, {"bible_test": 40.0}, (Artifact("onnx", "x", "s"),))  # fmt: skip
    profiles = (
        HardwareProfileRecord("p1", {}, PredictorRef("predictors/p1.pt", "s", 200, 100, 1.234, 0.9612)),
        HardwareProfileRecord("p2", {}, PredictorRef("predictors/p2.pt", "s", 200, 100, 2.0, 0.95)),
    )
    folder = tmp_path / "retest"
    folder.mkdir()
    errors = {k: RetestError(k, 40, pct, pct, pct, 0.1) for k, pct in (("ratio", 0.8), ("fitted", 1.01))}
    save_retest(folder / "p1.json", "p1", Path("a.jsonl"), Path("b.jsonl"), errors)
    found = load_retests(folder, ["p1", "p2"])
    assert set(found) == {"p1"} and load_retests(None, ["p1"]) == {}  # p2 was not retested: nothing claimed
    catalog = Catalog("en-de", FileRef("t", "s"), FileRef("s", "s"), REFERENCE_WORKLOAD, profiles, (e,))
    report = write_report(tmp_path, catalog, [], {}, retests=found)
    text = (tmp_path / "REPORT.md").read_text()
    assert "MAPE **1.23 %**, Kendall τ **0.961**" in text and "ratio 0.80 %, fitted 1.01 %" in text
    assert "40 archs measured twice" in text
    assert report["retest"]["p1"]["errors"] == {k: e.to_dict() for k, e in errors.items()}
    assert "| p1@a | 50 | 10.0 | 12.0 | 1 | 10.0 | 10.00 |" in text  # p95 and the mean BLEU beside p50
