"""Serving-time selection on fake latencies: pick, ladder, nearest profile, scale/offset fit, bounded calibration."""

import pytest

from hat_engine.catalog.schema import CatalogEntry
from hat_engine.errors import CatalogError
from hat_engine.serving.selection import (
    Option,
    calibrate,
    calibration_order,
    guard_ladder,
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


def test_guard_ladder_keeps_rungs_a_step_apart_with_the_fastest_at_the_bottom():
    # The shipped AVX-512 BF16 1-thread profile's p95s (ms) and mean BLEU, fastest first.
    shipped = [opt("a", 14.9, 14.37), opt("b", 16.8, 14.38), opt("c", 20.9, 16.81), opt("d", 21.8, 17.09),
               opt("e", 22.5, 17.14), opt("f", 41.2, 17.39), opt("g", 42.6, 17.40), opt("h", 78.4, 17.46)]  # fmt: skip
    ids = lambda ladder: [o.entry_id for o in ladder]  # noqa: E731
    # Down from h: g (0.54x h), e (0.53x g), then b (0.75x e), which gives way to the fastest, a (0.89x b).
    assert ids(guard_ladder(shipped, shipped[-1], 0.15)) == ["a", "e", "g", "h"]
    assert ids(guard_ladder(shipped, shipped[-1], 0.0)) == ids(shipped)  # no step: the whole Pareto ladder
    assert ids(guard_ladder(shipped, shipped[4], 0.15)) == ["a", "e"]  # never above the selected entry
    assert ids(guard_ladder(shipped, shipped[1], 0.15)) == ["a", "b"]  # one step too small: still a last resort
    assert ids(guard_ladder(shipped, shipped[0], 0.15)) == ["a"]
    assert ids(guard_ladder(OPTIONS, OPTIONS[2], 0.15)) == ["fast", "mid", "slow"]  # "bad" is dominated
    with pytest.raises(ValueError, match="fraction"):
        guard_ladder(shipped, shipped[-1], 1.0)


def test_nearest_profile_prefers_backend_then_device_arch_isa_threads():
    ids = ["cpu-x86_64-avx2-4t-onnxruntime", "cpu-x86_64-avx512-2t-torch", "cpu-aarch64-neon-2t-onnxruntime",
           "cpu-x86_64-avx512-8t-onnxruntime"]  # fmt: skip
    assert nearest_profile(ids, "cpu-x86_64-avx512-2t-onnxruntime") == "cpu-x86_64-avx512-8t-onnxruntime"
    assert nearest_profile(ids, "cpu-x86_64-amx-4t-onnxruntime") == "cpu-x86_64-avx2-4t-onnxruntime"
    assert nearest_profile(ids, "cuda-nvidia-h100-x86_64-amx-2t-torch") == "cpu-x86_64-avx512-2t-torch"
    shipped = [f"cpu-x86_64-{isa}-{t}t-onnxruntime" for isa in ("avx2", "avx512bf16") for t in (1, 2)]
    assert nearest_profile(shipped, "cpu-x86_64-amx-2t-onnxruntime") == "cpu-x86_64-avx512bf16-2t-onnxruntime"
    assert nearest_profile(shipped[::-1], "cpu-x86_64-base-1t-onnxruntime") == "cpu-x86_64-avx2-1t-onnxruntime"


def test_fit_power_law_is_the_one_latency_map():
    from hat_engine.latency.transfer import fit_power_law

    assert fit_power_law([10.0], [25.0]) == pytest.approx((2.5, 1.0))
    scale, exponent = fit_power_law([10.0, 20.0], [20.0, 50.0])  # two points: a ratio (geometric mean), no slope
    assert exponent == 1.0 and scale == pytest.approx((2.0 * 2.5) ** 0.5)
    base = [10.0, 20.0, 40.0, 80.0]
    scale, exponent = fit_power_law(base, [3.0 * b**0.8 for b in base])
    assert (scale, exponent) == pytest.approx((3.0, 0.8))
    scale, exponent = fit_power_law([10.0, 20.0, 30.0], [30.0, 20.0, 10.0])  # inverted: never invert the order
    assert exponent == 1.0 and scale > 0


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
    truth = {k: 3.0 * v**0.8 for k, v in (("a", 10.0), ("b", 20.0), ("c", 40.0), ("d", 30.0))}  # this host

    def measure(e):
        clock.t += truth[e.id] / 10  # a measurement costs time proportional to the latency
        return truth[e.id]

    cal = calibrate(entries, "other", measure, budget_s=100.0, clock=clock)
    assert set(cal.measured_p95_ms) == {"a", "b", "c", "d"}
    assert cal.scale == pytest.approx(3.0) and cal.exponent == pytest.approx(0.8)
    options = {o.entry_id: o for o in options_on_host(entries, cal)}
    assert options["d"].p95_ms == truth["d"] and options["d"].measured_here

    clock.t = 0.0
    cal = calibrate(entries, "other", measure, budget_s=10.0, clock=clock)
    assert list(cal.measured_p95_ms) == ["a", "c"]  # 7.6 s; then "d" (~4.3 s more) and "b" (~2.9 s) overrun 10 s
    assert cal.seconds <= 10.0
    mapped = {o.entry_id: o for o in options_on_host(entries, cal)}
    assert not mapped["b"].measured_here and mapped["b"].p95_ms == pytest.approx(cal.apply(20.0))
    assert [o.entry_id for o in options_on_host(entries, cal)] == ["a", "b", "d", "c"]


def test_exact_profile_uses_the_catalog_numbers(tiny_space):
    options = options_on_host([entry("a", 12.0, tiny_space)], None)
    assert options[0].p95_ms == 12.0 and options[0].p50_ms == pytest.approx(10.8) and options[0].measured_here


def test_thread_count_follows_the_catalogs_measurements_of_this_host(tiny_space):
    from hat_engine.catalog.schema import Catalog, FileRef
    from hat_engine.latency.timing import REFERENCE_WORKLOAD
    from hat_engine.serving.selection import best_thread_count

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
    assert best_thread_count(catalog, "cpu-x86_64-neon-4t-onnxruntime", 4, 100) is None  # never measured here
    faster_two = Catalog("en-de", FileRef("t", "s"), FileRef("s", "s"), REFERENCE_WORKLOAD, (),
                         (e("a", one, 40, 20), e("c", two, 20, 20)))  # fmt: skip
    assert best_thread_count(faster_two, host, 2, 30) == 2
