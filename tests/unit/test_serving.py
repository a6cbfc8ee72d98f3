"""Serving-time selection on fake latencies: pick, ladder, nearest profile, scale/offset fit, bounded calibration."""

import pytest

from hat_engine.catalog import CatalogEntry
from hat_engine.errors import CatalogError
from hat_engine.serving import (
    Option,
    calibrate,
    calibration_order,
    fit_scale_offset,
    nearest_profile,
    options_on_host,
    pareto_ladder,
    pick,
)


def opt(entry_id: str, p95: float, bleu: float) -> Option:
    return Option(entry_id, p95 * 0.9, p95, bleu, 1, True)


OPTIONS = [opt("fast", 10, 20), opt("mid", 20, 25), opt("slow", 40, 28), opt("bad", 30, 22)]


def entry(entry_id: str, p95: float, tiny_space) -> CatalogEntry:
    return CatalogEntry(entry_id, "p", 0.0, tiny_space.smallest(), 1, {"p50": p95 * 0.9, "p95": p95}, 0.0,
                        {"a": 20.0}, {}, ())  # fmt: skip


def test_pick_best_bleu_within_sla_else_fastest_with_violation():
    assert pick(OPTIONS, None) == (OPTIONS[2], False)  # no SLA: the best
    assert pick(OPTIONS, 25) == (OPTIONS[1], False)
    assert pick(OPTIONS, 35) == (OPTIONS[1], False)  # "bad" fits but is worse than "mid"
    assert pick(OPTIONS, 40) == (OPTIONS[2], False)  # the boundary counts as meeting it
    assert pick(OPTIONS, 5) == (OPTIONS[0], True)
    with pytest.raises(CatalogError, match="no servable"):
        pick([], 10)


def test_pareto_ladder_drops_dominated_entries():
    assert [o.entry_id for o in pareto_ladder(OPTIONS)] == ["fast", "mid", "slow"]


def test_nearest_profile_prefers_backend_then_device_arch_isa_threads():
    ids = ["cpu-x86_64-avx2-4t-onnxruntime", "cpu-x86_64-avx512-2t-torch", "cpu-aarch64-neon-2t-onnxruntime",
           "cpu-x86_64-avx512-8t-onnxruntime"]  # fmt: skip
    assert nearest_profile(ids, "cpu-x86_64-avx512-2t-onnxruntime") == "cpu-x86_64-avx512-8t-onnxruntime"
    assert nearest_profile(ids, "cpu-x86_64-amx-4t-onnxruntime") == "cpu-x86_64-avx2-4t-onnxruntime"
    assert nearest_profile(ids, "cuda-nvidia-h100-x86_64-amx-2t-torch") == "cpu-x86_64-avx512-2t-torch"


def test_fit_scale_offset():
    assert fit_scale_offset([10.0], [25.0]) == (2.5, 0.0)
    scale, offset = fit_scale_offset([10.0, 20.0], [20.0, 40.0])
    assert scale == pytest.approx(2.0) and offset == 0.0
    scale, offset = fit_scale_offset([10.0, 20.0, 40.0], [25.0, 45.0, 85.0])
    assert scale == pytest.approx(2.0) and offset == pytest.approx(5.0)
    scale, offset = fit_scale_offset([10.0, 20.0, 30.0], [30.0, 20.0, 10.0])  # inverted: fall back to a ratio
    assert scale > 0 and offset == 0.0


def test_calibration_order_spans_the_range_first(tiny_space):
    entries = [entry(str(i), float(p), tiny_space) for i, p in enumerate([50, 10, 30, 20, 40])]
    assert [e.p95 for e in calibration_order(entries)] == [10, 50, 30, 20, 40]


class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_calibration_maps_latencies_and_respects_its_budget(tiny_space):
    entries = [entry(name, p95, tiny_space) for name, p95 in (("a", 10.0), ("b", 20.0), ("c", 40.0), ("d", 30.0))]
    clock = FakeClock()
    truth = {"a": 25.0, "b": 45.0, "c": 85.0, "d": 65.0}  # this host: 2x slower plus 5 ms

    def measure(e):
        clock.t += truth[e.id] / 10  # a measurement costs time proportional to the latency
        return truth[e.id]

    cal = calibrate(entries, "other", measure, budget_s=100.0, clock=clock)
    assert set(cal.measured_p95_ms) == {"a", "b", "c", "d"}
    assert cal.scale == pytest.approx(2.0) and cal.offset == pytest.approx(5.0)
    options = {o.entry_id: o for o in options_on_host(entries, cal)}
    assert options["d"].p95_ms == 65.0 and options["d"].measured_here

    clock.t = 0.0
    cal = calibrate(entries, "other", measure, budget_s=14.0, clock=clock)
    assert list(cal.measured_p95_ms) == ["a", "c"]  # then "d" (~6.4 s more) and "b" (~4.3 s) would overrun 14 s
    assert cal.seconds <= 14.0
    mapped = {o.entry_id: o for o in options_on_host(entries, cal)}
    assert not mapped["b"].measured_here and mapped["b"].p95_ms == pytest.approx(cal.apply(20.0))
    assert [o.entry_id for o in options_on_host(entries, cal)] == ["a", "b", "d", "c"]


def test_exact_profile_uses_the_catalog_numbers(tiny_space):
    options = options_on_host([entry("a", 12.0, tiny_space)], None)
    assert options[0].p95_ms == 12.0 and options[0].p50_ms == pytest.approx(10.8) and options[0].measured_here


def test_thread_count_follows_the_catalogs_measurements_of_this_host(tiny_space):
    from hat_engine.catalog import Catalog, FileRef
    from hat_engine.latency import REFERENCE_WORKLOAD
    from hat_engine.serving import best_thread_count

    def e(entry_id, profile, p95, bleu):
        return CatalogEntry(entry_id, profile, 0.0, tiny_space.smallest(), 1, {"p50": p95, "p95": p95}, 0.0,
                            {"a": bleu}, {}, ())  # fmt: skip

    one, two, other = "cpu-x86_64-amx-1t-onnxruntime", "cpu-x86_64-amx-2t-onnxruntime", "cpu-x86_64-avx2-1t-onnxruntime"
    entries = (e("a", one, 40, 20), e("b", one, 90, 25), e("c", two, 100, 20), e("d", two, 240, 25),
               e("z", other, 1, 99))  # fmt: skip
    catalog = Catalog("en-de", FileRef("t", "s"), FileRef("s", "s"), REFERENCE_WORKLOAD, (), entries)
    host = "cpu-x86_64-amx-2t-onnxruntime"
    assert best_thread_count(catalog, host, 2, 100) == 1  # 1 thread meets 100 ms with BLEU 25, 2 threads with 20
    assert best_thread_count(catalog, host, 2, None) == 1  # same best BLEU, 1 thread is faster
    assert best_thread_count(catalog, host, 1, 100) == 1
    assert best_thread_count(catalog, "cpu-x86_64-neon-4t-onnxruntime", 4, 100) == 4  # never measured: the limit
    faster_two = Catalog("en-de", FileRef("t", "s"), FileRef("s", "s"), REFERENCE_WORKLOAD, (),
                         (e("a", one, 40, 20), e("c", two, 20, 20)))  # fmt: skip
    assert best_thread_count(faster_two, host, 2, 30) == 2
