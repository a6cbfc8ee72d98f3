"""The latency dataset: one file per profile with its fingerprint, resumable, refusing mixed settings."""

import json
from dataclasses import replace

import pytest

from hat_engine.errors import DataError
from hat_engine.latency.dataset import (
    LatencyRow,
    Target,
    build_dataset,
    dataset_archs,
    read_dataset,
    recheck_dataset,
    sample_arch,
)
from hat_engine.latency.timing import Workload


def test_build_resume_and_mismatch(tiny_supernet, tmp_path):
    workload = Workload(1, 5, 4, 2)
    targets = [Target("torch", 1)]
    never = lambda *_: pytest.fail("torch targets need no export")  # noqa: E731
    paths = build_dataset(tiny_supernet, targets, tmp_path, 3, never, runs=2, warmup=0, workload=workload)
    header, rows = read_dataset(paths[targets[0]])
    assert (
        header["profile"]["profile_id"].endswith("-1t-torch")
        and paths[targets[0]].stem == header["profile"]["profile_id"]
    )
    assert [r.index for r in rows] == [0, 1, 2]
    assert dataset_archs(rows)[0][:2] == [tiny_supernet.space.largest(), tiny_supernet.space.smallest()]
    seen = []
    build_dataset(tiny_supernet, targets, tmp_path, 5, never, runs=2, warmup=0, workload=workload,
                  on_arch=lambda i, *_: seen.append(i))  # fmt: skip
    assert seen == [3, 4] and len(read_dataset(paths[targets[0]])[1]) == 5
    assert sample_arch(tiny_supernet.space, 1, 4) == dataset_archs(read_dataset(paths[targets[0]])[1])[0][4]
    with pytest.raises(DataError, match="another space, workload or seed"):
        build_dataset(tiny_supernet, targets, tmp_path, 5, never, seed=2, runs=2, warmup=0, workload=workload)
    # a dataset timed before the repeat ban was part of the workload (its header lacks no_repeat_ngram) resumes
    # only without the ban, and says why otherwise
    path = paths[targets[0]]
    lines = path.read_text().splitlines()
    old_header = json.loads(lines[0])
    del old_header["workload"]["no_repeat_ngram"]
    path.write_text("\n".join([json.dumps(old_header), *lines[1:]]) + "\n")
    with pytest.raises(DataError, match="no_repeat_ngram=0"):
        build_dataset(tiny_supernet, targets, tmp_path, 5, never, runs=2, warmup=0, workload=workload)
    unbanned = replace(workload, no_repeat_ngram=0)
    build_dataset(tiny_supernet, targets, tmp_path, 6, never, runs=2, warmup=0, workload=unbanned)
    assert len(read_dataset(path)[1]) == 6
    # each row was timed beside the reference (the smallest arch), which the header names
    assert header["reference_arch"] == tiny_supernet.space.smallest().to_dict()
    assert all(r.ratio > 0 and r.reference_p50 > 0 for r in rows)
    with pytest.raises(DataError, match="with a reference arch"):
        build_dataset(tiny_supernet, targets, tmp_path, 7, never, runs=2, warmup=0, workload=unbanned, paired=False)


def test_labels_are_the_ratio_to_the_reference_times_its_median(tiny_space):
    arch = tiny_space.largest().to_dict()
    rows = [{"arch": arch, "p50": 240.0, "ratio": 2.0, "reference_p50": 120.0},  # a 10x slow spell slowed both
            {"arch": arch, "p50": 24.0, "ratio": 2.0, "reference_p50": 12.0},
            {"arch": arch, "p50": 36.0, "ratio": 3.0, "reference_p50": 12.0}]  # fmt: skip
    rows = [LatencyRow.from_dict(r) for r in rows]
    assert dataset_archs(rows)[1] == [24.0, 24.0, 36.0]
    # one row without a ratio (an older, unpaired file): the p50s as measured
    unpaired = LatencyRow.from_dict({"arch": arch, "p50": 36.0})
    assert dataset_archs([*rows[:2], unpaired])[1] == [240.0, 24.0, 36.0]
    assert LatencyRow.from_dict(rows[0].to_dict()) == rows[0]  # the file format round-trips


@pytest.mark.integration  # seconds, not milliseconds: runs with the integration tests
def test_recheck_replaces_a_disturbed_row_in_place_and_once(tiny_supernet, tmp_path):
    targets = [Target("torch", 1)]
    never = lambda *_: pytest.fail("torch targets need no export")  # noqa: E731
    path = build_dataset(tiny_supernet, targets, tmp_path, 16, never, runs=3, warmup=1)[targets[0]]
    lines = path.read_text().splitlines()
    bad = json.loads(lines[6])
    bad["p50"] /= 50  # a row 50x too fast: far off what the others predict
    bad["ratio"] /= 50
    lines[6] = json.dumps(bad)
    path.write_text("\n".join(lines) + "\n")

    counts = recheck_dataset(tiny_supernet, targets, tmp_path, never, threshold=5.0, runs=3, warmup=1)
    assert counts == {path.name: 1, "rechecked_archs": 1}
    _, rows = read_dataset(path)
    fixed = rows[5]
    assert fixed.index == bad["index"] and fixed.rechecked and fixed.p50 > 10 * bad["p50"]
    assert [r.index for r in rows] == list(range(16)) and sum(r.rechecked for r in rows) == 1
    assert recheck_dataset(tiny_supernet, targets, tmp_path, never, threshold=5.0)["rechecked_archs"] == 0


def test_dataset_rows_with_a_bad_latency_are_refused(tiny_space):
    from hat_engine.errors import LatencyError
    from hat_engine.latency.dataset import dataset_archs

    good = {"index": 0, "arch": tiny_space.largest().to_dict(), "p50": 12.5}
    assert dataset_archs([LatencyRow.from_dict(good)])[1] == [12.5]
    for p50 in (None, float("nan"), -1.0, 0.0):
        with pytest.raises(LatencyError, match="latency dataset p50"):
            dataset_archs([LatencyRow.from_dict(good), LatencyRow.from_dict({**good, "index": 1, "p50": p50})])
    with pytest.raises(DataError, match="row is malformed"):
        LatencyRow.from_dict({"index": 2, "p50": 1.0})
    with pytest.raises(LatencyError, match="no latencies"):
        dataset_archs([])


def test_retest_error_per_statistic(tiny_space):
    from hat_engine.latency.dataset import LatencyRow, sample_arch
    from hat_engine.latency.retest import retest_errors

    archs = [sample_arch(tiny_space, 1, i) for i in range(4)]
    first = [LatencyRow(i, a, {"p50": 10.0 * (i + 1), "trimmed_mean": 10.0 * (i + 1)}, 1.0 + i, 10.0)
             for i, a in enumerate(archs)]  # fmt: skip
    # the second sitting: every p50 10 % slower except one 30 % faster; the ratios steady but one
    factors = [1.1, 1.1, 1.1, 0.7]
    second = [LatencyRow(r.index, r.arch, {"p50": r.p50 * f, "trimmed_mean": r.p50}, r.ratio * (1.02 if i else 1.0),
                         r.reference_p50 * f) for i, (r, f) in enumerate(zip(first, factors, strict=True))]  # fmt: skip
    errors = retest_errors(first, second)
    assert set(errors) == {"p50", "trimmed_mean", "ratio", "fitted"}
    p50 = errors["p50"]
    assert p50.archs == 4 and abs(p50.max_pct - 200 * 0.3 / 1.7) < 1e-6 and p50.bias_pct < 0
    assert errors["trimmed_mean"].max_pct == 0.0
    assert abs(errors["ratio"].max_pct - 200 * 0.02 / 2.02) < 1e-6
    with pytest.raises(DataError, match="share 1 archs"):
        retest_errors(first[:1], second)
    other = [LatencyRow(r.index, archs[(r.index + 1) % 4], r.stats, r.ratio, r.reference_p50) for r in second]
    with pytest.raises(DataError, match="different archs"):
        retest_errors(first, other)
