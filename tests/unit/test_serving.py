"""Serving-time selection on fake latencies: pick, ladder, nearest profile, latency maps, bounded calibration."""

import pytest

from hat_engine.catalog.schema import CatalogEntry
from hat_engine.errors import CatalogError, ConfigError
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


def test_fit_power_law_by_group_shares_the_exponent_and_scales_each_group():
    from hat_engine.latency.transfer import fit_power_law_by_group

    base = [10.0, 20.0, 40.0, 80.0, 30.0, 60.0]
    groups = ["int8"] * 4 + ["fp32"] * 2
    here = [(0.4 if g == "int8" else 0.9) * b**1.2 for b, g in zip(base, groups, strict=True)]
    scales, exponent = fit_power_law_by_group(base, here, groups)
    assert exponent == pytest.approx(1.2) and scales == pytest.approx({"int8": 0.4, "fp32": 0.9})
    # One point per group: no spread within any group to fit an exponent from; each scale is its group's ratio.
    scales, exponent = fit_power_law_by_group([10.0, 50.0], [4.0, 45.0], ["int8", "fp32"])
    assert exponent == 1.0 and scales == pytest.approx({"int8": 0.4, "fp32": 0.9})
    # Three points in two groups: one short of a slope (groups + 2 points).
    assert fit_power_law_by_group([10.0, 20.0, 50.0], [4.0, 9.0, 45.0], ["a", "a", "b"])[1] == 1.0
    with pytest.raises(ConfigError, match="aligned"):
        fit_power_law_by_group([10.0, 20.0], [4.0, 9.0], ["a"])


def test_calibration_order_spans_the_range_first(tiny_space):
    entries = [entry(str(i), float(p), tiny_space) for i, p in enumerate([50, 10, 30, 20, 40])]
    assert [e.p95 for e in calibration_order(entries)] == [10, 50, 30, 20, 40]
    # Per format, taken in turn: every format is reached by the first measurements.
    fmt = {"0": "fp32", "1": "int8", "2": "int8", "3": "int8", "4": "fp32"}
    ordered = calibration_order(entries, lambda e: fmt[e.id])
    assert [(fmt[e.id], e.p95) for e in ordered] == [("int8", 10), ("fp32", 40), ("int8", 30), ("fp32", 50),
                                                     ("int8", 20)]  # fmt: skip


class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_calibration_maps_latencies_and_respects_its_budget(tiny_space):
    p95 = {"a": 10.0, "b": 20.0, "c": 40.0, "d": 30.0}  # the catalog's p50 is 0.9x its p95 (`entry`)
    entries = [entry(k, v, tiny_space) for k, v in p95.items()]
    clock = FakeClock()
    truth = {k: 3.0 * (0.9 * v) ** 0.8 for k, v in p95.items()}  # p50 on this host
    timed = []

    def time_entry(e):
        clock.t += truth[e.id] / 9  # a round costs time proportional to the latency
        timed.append(e.id)
        return [truth[e.id] * f for f in (0.9, 1.0, 1.0, 1.02, 1.1)]

    cal = calibrate(entries, "other", time_entry, budget_s=100.0, clock=clock)
    assert cal.measured_p50_ms == pytest.approx(truth) and cal.measured_p95_ms["d"] == pytest.approx(1.1 * truth["d"])
    assert cal.rounds == 3 and timed == ["a", "c", "d", "b"] * 3  # ~15.7 s a round: three fit in 100 s
    assert cal.scales == pytest.approx({"": 3.0}) and cal.exponent == pytest.approx(0.8)
    assert cal.tail_ratio == pytest.approx(1.1)  # this host's tail is lighter than the catalog's 1/0.9
    options = {o.entry_id: o for o in options_on_host(entries, cal)}
    assert options["d"].p50_ms == truth["d"] and options["d"].measured_here
    assert options["d"].p95_ms == pytest.approx(truth["d"] / 0.9)

    clock.t, timed[:] = 0.0, []
    cal = calibrate(entries, "other", time_entry, budget_s=10.0, clock=clock)
    assert list(cal.measured_p50_ms) == ["a", "c"]  # 7.7 s; then "d" (~4.4 s more) and "b" (~2.9 s) overrun 10 s
    assert cal.rounds == 1 and timed == ["a", "c"] and cal.seconds <= 10.0  # no time for a second round
    mapped = {o.entry_id: o for o in options_on_host(entries, cal)}
    assert not mapped["b"].measured_here and mapped["b"].p50_ms == pytest.approx(cal.apply("b", 18.0))
    assert [o.entry_id for o in options_on_host(entries, cal)] == ["a", "b", "d", "c"]


def test_calibration_takes_this_hosts_tail_when_it_is_heavier(tiny_space):
    entries = [entry(k, v, tiny_space) for k, v in (("a", 10.0), ("b", 20.0))]
    spiky = lambda e: [e.latency_ms["p50"]] * 4 + [2.0 * e.latency_ms["p50"]]  # noqa: E731  one decode in 5 twice as slow
    cal = calibrate(entries, "other", spiky, clock=FakeClock())
    assert cal.tail_ratio == 2.0 and cal.scales == pytest.approx({"": 1.0})
    assert [o.p95_ms for o in options_on_host(entries, cal)] == pytest.approx([18.0, 36.0])  # not the catalog's 10, 20


def test_calibration_scales_each_format_by_its_own_measurements(tiny_space):
    """int8 2.5x faster here, fp32 1.25x (as on the AMD host against the AMX catalog): one map through both
    would misplace every entry it did not measure; one scale per format places them all."""
    p95 = {"i1": 20.0, "i2": 30.0, "i3": 45.0, "i4": 60.0, "f1": 50.0, "f2": 90.0, "f3": 120.0}
    fmt = {k: "onnx-int8" if k[0] == "i" else "onnx" for k in p95}
    entries = [entry(k, v, tiny_space) for k, v in p95.items()]
    truth = {k: (0.4 if fmt[k] == "onnx-int8" else 0.8) * v for k, v in p95.items()}
    clock = FakeClock()

    def time_entry(e):
        clock.t += 1.0
        return [truth[e.id] * 0.9] * 5  # p50 here: the catalog's p50 (0.9x its p95) times the format's factor

    cal = calibrate(entries, "other", time_entry, lambda e: fmt[e.id], budget_s=100.0, max_entries=4, clock=clock)
    assert set(cal.measured_p50_ms) == {"i1", "f1", "i4", "f3"}  # each format's fastest and slowest
    assert cal.scales == pytest.approx({"onnx-int8": 0.4, "onnx": 0.8}) and cal.exponent == pytest.approx(1)
    assert {o.entry_id: o.p95_ms for o in options_on_host(entries, cal)} == pytest.approx(truth)

    # A format the budget left unmeasured is mapped with the measured formats' mean scale, and said so.
    clock.t = 0.0
    cal = calibrate(entries, "other", time_entry, lambda e: fmt[e.id], budget_s=1.0, clock=clock)
    assert list(cal.measured_p50_ms) == ["i1"] and cal.scales == pytest.approx({"onnx-int8": 0.4, "onnx": 0.4})


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
