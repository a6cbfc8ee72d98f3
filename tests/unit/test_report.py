"""Pareto front and the searched-vs-baseline comparison of the catalog report."""

import pytest

from hat_engine.catalog import CatalogEntry
from hat_engine.report import compare, pareto


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
