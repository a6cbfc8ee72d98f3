"""The reference workload decodes a fixed number of steps; the timer's statistics are right."""

import random

import pytest

from hat_engine.latency.timing import Workload, measure, measure_interleaved, reference_source, run_workload, stats


def test_workload_decodes_exactly_the_target_steps(tiny_supernet, tiny_space):
    workload = Workload(batch_size=2, source_tokens=7, target_tokens=9, beam=3)
    for seed in range(3):
        model = tiny_supernet.extract(tiny_space.sample(random.Random(seed)))
        src = reference_source(workload, model.model_config)
        assert src.shape == (2, 7) and (src[:, -1] == model.model_config.eos_id).all()
        hyps = run_workload(model, src, workload)
        assert [len(h) for h in hyps] == [8, 8]  # 8 tokens + EOS = 9 decoder steps
        greedy = run_workload(model, src, Workload(2, 7, 9, beam=1))
        assert [len(h) for h in greedy] == [8, 8]


def test_workload_decodes_with_the_served_repeat_ban_and_old_records_read_back_without_it(tiny_supernet, tiny_space):
    from dataclasses import replace

    from hat_engine.latency.timing import REFERENCE_WORKLOAD
    from hat_engine.model.translate import NO_REPEAT_NGRAM

    assert REFERENCE_WORKLOAD.no_repeat_ngram == NO_REPEAT_NGRAM > 0  # what is timed is what is served
    old = {"batch_size": 1, "source_tokens": 30, "target_tokens": 30, "beam": 4}  # recorded before the ban
    assert Workload.from_dict(old) == replace(REFERENCE_WORKLOAD, no_repeat_ngram=0)
    assert Workload.from_dict(REFERENCE_WORKLOAD.to_dict()) == REFERENCE_WORKLOAD
    # a random tiny model repeats itself over 40 steps; under a bigram ban no hypothesis holds a bigram twice
    workload = Workload(batch_size=2, source_tokens=7, target_tokens=40, beam=2, no_repeat_ngram=2)
    model = tiny_supernet.extract(tiny_space.largest())
    src = reference_source(workload, model.model_config)

    def repeats(hyp):
        return len(set(zip(hyp, hyp[1:], strict=False))) < len(hyp) - 1

    free = run_workload(model, src, replace(workload, no_repeat_ngram=0))
    banned = run_workload(model, src, workload)
    assert any(repeats(h) for h in free) and not any(repeats(h) for h in banned)
    assert [len(h) for h in banned] == [39, 39]


def test_stats_and_measure(tiny_supernet):
    s = stats([float(x) for x in range(1, 21)])
    assert s.p50 == pytest.approx(10.5) and s.p95 == 19.0 and s.runs == 20
    assert s.trimmed_mean == pytest.approx(sum(range(3, 19)) / 16)
    result = measure(tiny_supernet.extract(), Workload(1, 5, 5, 2), warmup=1, runs=3)
    assert result.runs == 3 and 0 < result.p50 <= result.p95


def test_measure_interleaved_times_every_model_each_round_in_shuffled_order(tiny_supernet, tiny_space):
    models = {"big": tiny_supernet.extract(tiny_space.largest()), "small": tiny_supernet.extract(tiny_space.smallest()),
              "mid": tiny_supernet.extract(tiny_space.sample(random.Random(1)))}  # fmt: skip
    loads, rounds_seen = [], []

    def loader(name):
        def load():
            loads.append(name)
            return models[name]

        return load

    result = measure_interleaved({n: loader(n) for n in models}, Workload(1, 5, 5, 2), rounds=6, runs=2, warmup=1,
                                 on_round=lambda r, n: rounds_seen.append((r, n)))  # fmt: skip
    assert rounds_seen == [(r, 6) for r in range(1, 7)]
    assert sorted(loads) == sorted(list(models) * 6)
    orders = {tuple(loads[i : i + 3]) for i in range(0, 18, 3)}
    assert all(sorted(o) == sorted(models) for o in orders) and len(orders) > 1  # each round is a fresh order
    assert {n: s.runs for n, s in result.items()} == {"big": 12, "small": 12, "mid": 12}
    with pytest.raises(ValueError):
        measure_interleaved({"big": loader("big")}, rounds=0)


def test_latency_stats_and_timing_refuse_bad_input():
    from hat_engine.errors import LatencyError
    from hat_engine.latency.timing import measure_interleaved, stats, time_cpu

    for samples in ([], [1.0, float("nan")], [0.0], [-3.0, 2.0]):
        with pytest.raises(LatencyError):
            stats(samples)
    with pytest.raises(LatencyError, match="runs=0"):
        time_cpu(lambda: None, runs=0)
    with pytest.raises(LatencyError, match="warmup=-1"):
        time_cpu(lambda: None, warmup=-1)
    with pytest.raises(LatencyError, match="at least one model"):
        measure_interleaved({})
    assert stats([2.0, 4.0, 3.0]).p50 == 3.0


def test_time_paired_keeps_the_ratio_through_a_slow_spell():
    """A spell that slows the machine 10x for half the runs moves p50 far; the paired ratio stays 2."""
    import time

    from hat_engine.latency.timing import time_paired

    calls = {"n": 0}

    def slowdown() -> float:
        calls["n"] += 1
        return 10.0 if calls["n"] <= 24 else 1.0

    paired = time_paired(lambda: time.sleep(0.002 * slowdown()), lambda: time.sleep(0.001 * slowdown()),
                         warmup=1, runs=20)  # fmt: skip
    assert paired.arch.runs == paired.reference.runs == 20
    assert paired.arch.p50 > 10  # 11 of the 20 runs fell in the spell: the milliseconds moved 10x
    assert paired.ratio == pytest.approx(2.0, rel=0.3)
