"""The serving engine on the fixture catalog (fake latencies): selection, refusal, routing, LRU, calibration."""

import dataclasses

import pytest

from harness.fixture_catalog import build_fixture_catalog
from hat_engine.hardware import detect
from hat_engine.serving.engine import Listener, ServingEngine, ServingSettings

FAKE_P95 = [10.0, 20.0, 30.0, 40.0]  # tiny-a..tiny-d; BLEU rises with latency (test data)


@pytest.fixture(scope="module")
def host():
    return detect("onnxruntime", 1, probe_cuda=False)


@pytest.fixture(scope="module")
def catalogs(tmp_path_factory, host):
    out = {}
    for variant in (None, "source", "artifact"):
        folder = tmp_path_factory.mktemp(f"catalog-{variant}")
        build_fixture_catalog(folder, fake_p95_ms=FAKE_P95, corrupt=variant, host_profile=host.profile_id)
        out[variant] = folder
    return out


def engine(folder, host, sla_ms=None, listener=None, **kw) -> ServingEngine:
    settings = ServingSettings(folder, folder / ".cache", sla_ms=sla_ms, **kw)
    return ServingEngine(settings, host, listener)


def test_no_sla_serves_the_best_and_translates(catalogs, host):
    eng = engine(catalogs[None], host)
    plan = eng.start()
    assert plan.selected.entry_id == "tiny-d" and not plan.sla_violation and plan.calibration is None
    assert [o.entry_id for o in plan.options] == ["tiny-a", "tiny-b", "tiny-c", "tiny-d"]
    used, out = eng.translate(eng.route(), ["The house is small.", "", "   ", "A. B!\n\nC?"])
    assert used == "tiny-d" and isinstance(out[0].text, str) and out[0].tokens > 0
    assert (out[1].text, out[1].tokens, out[2].text) == ("", 0, "")
    assert out[3].text.count("\n\n") == 1  # line breaks survive, sentence by sentence
    described = eng.describe()
    assert described["selected"]["entry_id"] == "tiny-d" and len(described["entries"]) == 4
    assert described["exact_profile_match"] and described["loaded"] == ["tiny-d"]


@pytest.mark.parametrize(("sla", "expected", "violation"), [(25.0, "tiny-b", False), (40.0, "tiny-d", False),
                                                            (5.0, "tiny-a", True)])  # fmt: skip
def test_sla_selects_the_best_entry_meeting_it(catalogs, host, sla, expected, violation):
    plan = engine(catalogs[None], host, sla_ms=sla).start()
    assert (plan.selected.entry_id, plan.sla_violation) == (expected, violation)


def test_per_request_budget_routes_lazily_within_a_bounded_lru(catalogs, host):
    eng = engine(catalogs[None], host, max_loaded=2)
    eng.start()
    assert eng.route(15.0) == "tiny-a" and eng.route(35.0) == "tiny-c" and eng.route(1.0) == "tiny-a"
    for budget in (15.0, 25.0, 35.0, None):
        used, _ = eng.translate(eng.route(budget), ["We go to the station."])
        assert used == eng.route(budget)
    loaded = eng.pool.loaded_ids()
    assert len(loaded) == 2 and "tiny-d" in loaded  # the selected entry is pinned


@pytest.mark.parametrize("variant", ["source", "artifact"])
def test_altered_artifact_is_refused_and_the_next_entry_served(catalogs, host, variant):
    refused = []
    eng = engine(catalogs[variant], host, listener=Listener(refused=lambda e, why: refused.append(e)))
    plan = eng.start()
    assert refused == ["tiny-d"] and "refused" in plan.refused["tiny-d"]
    assert plan.selected.entry_id == "tiny-c"
    assert "tiny-d" not in [o.entry_id for o in plan.options] and eng.route(1000.0) == "tiny-c"
    assert {r["id"]: r["status"] for r in eng.describe()["entries"]}["tiny-d"] == "refused"


def test_unseen_host_calibrates_and_maps_latencies(catalogs, host, monkeypatch):
    other = dataclasses.replace(host, threads=host.threads + 2)  # a profile id the catalog never saw
    eng = engine(catalogs[None], other, sla_ms=45.0)
    monkeypatch.setattr(eng, "_time_entry", lambda entry, folder: [3.0 * entry.p95**0.8] * 5)  # this host
    plan = eng.start()
    assert plan.catalog_profile == host.profile_id and plan.host_profile == other.profile_id
    assert plan.calibration is not None and plan.calibration.scales == pytest.approx({"onnx": 3.0})
    assert plan.calibration.exponent == pytest.approx(0.8) and plan.calibration.rounds == 3
    assert {o.entry_id: o.p95_ms for o in plan.options} == pytest.approx(
        {"tiny-a": 18.93, "tiny-b": 32.96, "tiny-c": 45.58, "tiny-d": 57.38}, abs=0.01
    )
    assert plan.selected.entry_id == "tiny-b"  # the catalog's 30 ms entry is 45.6 ms here


def test_calibrate_always_times_the_catalogs_own_profile_too(catalogs, host, monkeypatch):
    """A VM whose speed drifts: on an exact profile match the entries are timed too, and this sitting decides."""
    eng = engine(catalogs[None], host, sla_ms=45.0, calibrate_always=True)
    monkeypatch.setattr(eng, "_time_entry", lambda entry, folder: [1.5 * entry.p95] * 5)  # 1.5x slower than the catalog
    plan = eng.start()
    assert plan.catalog_profile == plan.host_profile == host.profile_id and plan.calibration is not None
    assert plan.calibration.scales == pytest.approx({"onnx": 1.5})
    assert {o.entry_id: o.p95_ms for o in plan.options} == pytest.approx({"tiny-a": 15, "tiny-b": 30, "tiny-c": 45,
                                                                          "tiny-d": 60})  # fmt: skip
    assert plan.selected.entry_id == "tiny-c"  # the catalog's 30 ms entry is 45 ms in this sitting
    assert engine(catalogs[None], host, sla_ms=45.0).start().selected.entry_id == "tiny-d"  # the catalog's figures


def test_calibration_times_the_verified_folders_without_the_pool(catalogs, host, monkeypatch):
    """Real timing on the fixture's tiny models: each entry is verified (its files hashed) once, at startup, and the
    calibration rounds neither re-verify through the pool's LRU nor leave their models loaded."""
    eng = engine(catalogs[None], host, calibrate_always=True)
    verified = []
    real_verify_all = eng.pool.verify_all
    monkeypatch.setattr(eng.pool, "verify_all", lambda entries: verified.extend(e.id for e in entries)
                        or real_verify_all(entries))  # fmt: skip
    plan = eng.start()
    assert plan.calibration.rounds == 3 and len(plan.calibration.measured_p50_ms) == 4
    # startup's check of every entry, then the served entry's load through the pool; none by the calibration
    assert sorted(verified) == sorted(["tiny-a", "tiny-b", "tiny-c", "tiny-d", plan.selected.entry_id])
    assert eng.pool.loaded_ids() == [plan.selected.entry_id]


def test_torch_backend_serves_the_torch_artifact(catalogs, host, monkeypatch):
    torch_host = detect("torch", 1, probe_cuda=False)  # the catalog only has onnxruntime profiles: calibrates
    eng = engine(catalogs[None], torch_host, backend="torch")
    monkeypatch.setattr(eng, "_time_entry", lambda entry, folder: [entry.p95] * 5)
    plan = eng.start()
    assert plan.selected.entry_id == "tiny-d" and plan.calibration is not None
    used, out = eng.translate(eng.route(), ["The house is small."])
    assert used == "tiny-d" and type(eng.pool.load(eng.catalog.entry(used))).__name__ == "Transformer"
    assert out[0].tokens > 0


def test_alternatives_are_distinct_and_differ_from_the_best(catalogs, host):
    eng = engine(catalogs[None], host)
    eng.start()
    texts = ["The house is small.", "We go to the station tomorrow morning. The weather is good.", ""]
    _, plain = eng.translate(eng.route(), texts)
    _, out = eng.translate(eng.route(), texts, alternatives=3)
    assert all(t.alternatives == () for t in plain)
    for t in out[:2]:
        assert 1 <= len(t.alternatives) <= 3 and t.text not in t.alternatives
        assert len(set(t.alternatives)) == len(t.alternatives) and all(t.alternatives)
    assert out[2].text == "" and out[2].alternatives == ()


def test_unseen_host_kind_times_the_thread_counts_and_serves_with_the_fastest(catalogs):
    two = detect("onnxruntime", 2, probe_cuda=False)
    eng = engine(catalogs[None], two, thread_choices=(1, 2))
    plan = eng.start()
    p50 = plan.thread_p50_ms
    assert set(p50) == {1, 2} and all(v > 0 for v in p50.values())
    chosen = min(p50, key=p50.__getitem__)
    assert eng.host.threads == eng.pool.threads == chosen and plan.host_profile.endswith(f"-{chosen}t-onnxruntime")
    assert eng.describe()["thread_p50_ms"] == p50 and eng.describe()["threads"] == chosen
    assert engine(catalogs[None], two).start().thread_p50_ms is None  # no choices: nothing timed
