"""`hat pipeline --preset quick`: the whole offline job on a tiny space and a slice of the real corpus."""

import json
import subprocess
import sys

import pytest

from hat_engine.catalog.check import validate_catalog
from hat_engine.latency.predictor import MIN_KENDALL_TAU, LatencyPredictor

pytestmark = pytest.mark.integration


def test_quick_pipeline_produces_a_valid_catalog(real_data, tmp_path, repo_root):
    out = tmp_path / "quick"
    result = subprocess.run(
        [sys.executable, "-m", "search_jobs.cli", "pipeline", "--preset", "quick", "--out", str(out),
         "--data", str(real_data)],
        capture_output=True, text=True, timeout=1200, cwd=repo_root,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    catalog, problems = validate_catalog(out / "catalog", materialized=True)
    assert not problems and catalog.entries
    report = json.loads((out / "catalog" / "report.json").read_text())
    assert report["baselines"] and report["comparisons"] and (out / "catalog" / "REPORT.md").is_file()
    # fine-tuned compared with fine-tuned: every baseline arch tuned alike, its weights not shipped
    assert set(report["finetuned_baselines"]) == {b["baseline"] for b in report["baselines"]}
    assert not list((out / "catalog" / "finetuned").glob("baseline-*"))
    # fine-tuned weights ship as an int8 delta where BLEU held, else whole; both sizes and scores recorded
    for record in catalog.extra["finetune"]:
        assert record["storage"] in ("int8-delta", "fp16") and record["fp16_bytes"] > 0
    # every searched arch (built once per profile, however many budgets found it) got an int8 twin, kept or
    # rejected on its BLEU
    int8 = catalog.extra["int8"]
    searched = sum(len({r["arch_id"] for r in json.loads(p.read_text())["results"]}) for p in out.glob("search-*.json"))
    assert len(int8["kept"]) + len(int8["rejected_bleu_drop"]) == searched
    # the predictor that steered the search: fitted on log ms, and ranking held-out archs above the floor
    (predictor_file,) = (out / "predictors").glob("*.pt")
    predictor = LatencyPredictor.load(predictor_file)
    assert predictor.log_target and predictor.extra["kendall_tau"] >= MIN_KENDALL_TAU, predictor.extra
    print(
        f"quick predictor {predictor.profile_id}: {predictor.extra['kept']}, tau {predictor.extra['kendall_tau']}, "
        f"MAPE {predictor.extra['mape']} %"
    )
    # fitness scores kept for the next profile's search
    assert json.loads((out / "fitness-cache.json").read_text())["scores"]
    # one entry re-measured on this host, as CONTRACT §2 prints it
    measured = subprocess.run(
        [sys.executable, "-m", "search_jobs.cli", "latency", "measure", "--entry", catalog.entries[0].id,
         "--catalog", str(out / "catalog"), "--runs", "3"],
        capture_output=True, text=True, timeout=300, cwd=repo_root,
    )  # fmt: skip
    assert measured.returncode == 0, measured.stderr[-2000:]
    assert set(json.loads(measured.stdout)) == {"p50", "p95"}
    # a second run resumes: every stage is already done
    again = subprocess.run(
        [sys.executable, "-m", "search_jobs.cli", "pipeline", "--preset", "quick", "--out", str(out),
         "--data", str(real_data)],
        capture_output=True, text=True, timeout=600, cwd=repo_root,
    )  # fmt: skip
    assert again.returncode == 0 and "supernet train" not in again.stdout
