"""Which searched archs the catalog build fine-tunes."""

import random
from dataclasses import replace

import pytest

from hat_engine.catalog.build import finetune_picks
from hat_engine.catalog.schema import CatalogEntry
from hat_engine.errors import ConfigError


def _entry(profile, budget, arch):
    return CatalogEntry(f"{profile}@{budget}ms", profile, budget, arch, 1, {"p50": budget, "p95": budget}, budget,
                        {"bible_test": 10.0}, {"bible_test": 40.0}, ())  # fmt: skip


def test_finetune_picks_the_largest_budget_archs_of_each_profile_once(tiny_space):
    rng = random.Random(0)
    others = list(dict.fromkeys(tiny_space.sample(rng) for _ in range(40)).keys() - {tiny_space.largest(),
                                                                                    tiny_space.smallest()})  # fmt: skip
    a, b, (c, d) = tiny_space.largest(), tiny_space.smallest(), sorted(others, key=lambda x: x.arch_id())[:2]
    entries = [_entry("1t", 30, d), _entry("1t", 60, b), _entry("1t", 70, a), _entry("1t", 80, a),  # a twice
               _entry("2t", 40, b), _entry("2t", 90, c), _entry("2t", 100, a)]  # fmt: skip
    picks = finetune_picks(entries, 2)
    # 1t: a (its 80 ms entry) and b; 2t: a and c, a already picked; d and the 2t's b are not among the largest two.
    assert [e.id for e in picks] == ["1t@80ms", "1t@60ms", "2t@90ms"]
    assert finetune_picks(entries, 0) == [] and finetune_picks([], 3) == []
    assert {e.arch for e in finetune_picks(entries, 9)} == {a, b, c, d}
    # named archs instead: each its largest-budget entry on the first profile that has it, in the order named
    assert [e.id for e in finetune_picks(entries, 0, (d.arch_id(), c.arch_id(), b.arch_id()))] == [
        "1t@30ms", "2t@90ms", "1t@60ms"]  # fmt: skip
    with pytest.raises(ConfigError, match=f"no searched arch nosuch to fine-tune; the searches found .*{a.arch_id()}"):
        finetune_picks(entries, 2, ("nosuch", a.arch_id()))


def test_entries_are_named_by_profile_and_arch_and_built_once_per_arch(tiny_space):
    from hat_engine.catalog.build import ProfileTarget
    from hat_engine.catalog.policy import entry_id, searched_jobs
    from hat_engine.search.results import BudgetResult, SearchResults

    a, b = tiny_space.smallest(), tiny_space.largest()
    found = (BudgetResult(40.0, b, 38.0, 1.0), BudgetResult(20.0, a, 12.0, 2.0), BudgetResult(30.0, a, 12.0, 2.0))
    target = ProfileTarget("cpu-x", "onnxruntime", 1, {})
    jobs = searched_jobs(SearchResults({}, {}, found), target)
    assert [(j.entry_id, j.budget_ms) for j in jobs] == [(f"cpu-x@{a.arch_id()}", 20.0), (f"cpu-x@{b.arch_id()}", 40.0)]
    assert entry_id("cpu-x", a) == f"cpu-x@{a.arch_id()}" != entry_id("cpu-y", a)


def test_a_pooled_profile_gets_the_other_searches_archs_budgeted_by_its_own_predictor(tiny_space):
    from hat_engine.catalog.build import ProfileTarget
    from hat_engine.catalog.policy import pooled_jobs, searched_jobs
    from hat_engine.search.results import BudgetResult, SearchResults

    a, b = tiny_space.smallest(), tiny_space.largest()
    target = ProfileTarget("cpu-x", "onnxruntime", 2, {})
    own = searched_jobs(SearchResults({}, {}, (BudgetResult(50.0, b, 48.0, 1.0),)), target)
    predicted = {a: 17.04, b: 99.0}
    jobs = pooled_jobs(own, [b, a, a], target, predicted.__getitem__)
    # b is the profile's own (its searched budget kept); a comes once, budgeted at this profile's prediction.
    assert [(j.arch, j.budget_ms, j.predicted_ms) for j in jobs] == [(a, 17.0, 17.04), (b, 50.0, 48.0)]
    assert pooled_jobs(own, [], target, predicted.__getitem__) == own


def test_a_kept_delta_rebuilds_the_archs_entries_on_every_profile_from_the_delta(tiny_space, tmp_path, monkeypatch):
    """With a pooled catalog an arch has entries on several profiles: each is rebuilt from the weights the
    fine-tune kept (the int8 delta, the whole fp16 file being removed), not from the removed file."""
    import hat_engine.train.finetune as finetune_module
    from hat_engine.catalog import policy as policy_module
    from hat_engine.catalog.build import ProfileTarget
    from hat_engine.catalog.policy import BuildPolicy, finetune_entries

    a = tiny_space.largest()
    entries = [_entry("1t", 80, a), _entry("2t", 70, a)]
    targets = {p: ProfileTarget(p, "onnxruntime", 1, {}) for p in ("1t", "2t")}
    built = []

    class Builder:
        dir, data_dir = tmp_path, tmp_path

        def prepare(self, entry_id, arch, target, budget_ms, predicted_ms, fmt="onnx", source=None):
            assert source is None or (tmp_path / source).is_file(), f"{entry_id} rebuilt from missing {source}"
            built.append((entry_id, source))
            e = next(x for x in entries if x.id == entry_id)
            return replace(e, bleu={"bible_test": 12.0})

    def finetune(supernet, arch, data_dir, work_dir, out, settings):
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(b"fp16")
        return {"steps": 1}

    def as_delta(builder, tuned, name, max_drop, rebuilt, say):
        delta = name.removesuffix(".pt") + ".delta.pt"
        (tmp_path / delta).write_bytes(b"delta")
        (tmp_path / name).unlink()
        return rebuilt(tuned, delta), delta, {"storage": "int8-delta"}

    monkeypatch.setattr(finetune_module, "finetune", finetune)
    monkeypatch.setattr(policy_module, "_as_delta", as_delta)
    policy = BuildPolicy(finetune=1, finetune_steps=1, finetune_work=tmp_path / "work")
    out, records = finetune_entries(Builder(), entries, targets, policy, lambda _: None)
    delta = f"finetuned/{a.arch_id()}.delta.pt"
    assert records[0]["kept"] and records[0]["weights"] == delta
    assert built[-1] == ("2t@70ms", delta) and [e.bleu["bible_test"] for e in out] == [12.0, 12.0]


def test_a_pick_an_earlier_catalog_ships_takes_those_weights_as_they_are(tiny_space, tmp_path, monkeypatch):
    """`--finetuned-from`: fine-tuning does not depend on the host, so a build for another host takes the weights
    an earlier catalog of the same supernet ships (checked against its sha256) and does not fine-tune again."""
    import hat_engine.train.finetune as finetune_module
    from hat_engine.catalog.build import ProfileTarget
    from hat_engine.catalog.policy import BuildPolicy, finetune_entries, shipped_finetunes
    from hat_engine.catalog.schema import parse_catalog, save_catalog
    from hat_engine.checksums import sha256_file
    from tests.unit.test_catalog import _catalog_dict

    a = tiny_space.largest()
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    d = _catalog_dict(earlier, "cpu-x", tiny_space)
    (earlier / "finetuned").mkdir()
    weights = f"finetuned/{a.arch_id()}.delta.pt"
    (earlier / weights).write_bytes(b"the delta")
    stamp = {"source": weights, "source_sha256": sha256_file(earlier / weights), "builder": "onnx-graph"}
    d["entries"][0]["artifacts"][0]["materialize"] = stamp
    d["extra"] = {"finetune": [{"arch_id": a.arch_id(), "entry": "cpu-x@e1", "steps": 110, "kept": True,
                                "weights": weights, "storage": "int8-delta", "delta_bytes": 9},
                               {"arch_id": "dropped", "kept": False, "weights": None}]}  # fmt: skip
    save_catalog(parse_catalog(d), earlier)
    supernet = sha256_file(earlier / "supernet.pt")
    shipped = shipped_finetunes((earlier,), supernet)
    assert list(shipped) == [a.arch_id()] and shipped[a.arch_id()]["file"] == earlier / weights
    with pytest.raises(ConfigError, match="its supernet is another"):
        shipped_finetunes((earlier,), "f" * 64)

    out = tmp_path / "out"
    entries = [_entry("1t", 80, a), _entry("2t", 70, a)]
    targets = {p: ProfileTarget(p, "onnxruntime", 1, {}) for p in ("1t", "2t")}
    built = []

    class Builder:
        dir, data_dir = out, tmp_path

        def prepare(self, entry_id, arch, target, budget_ms, predicted_ms, fmt="onnx", source=None):
            assert (out / source).read_bytes() == b"the delta"
            built.append((entry_id, source))
            return replace(next(x for x in entries if x.id == entry_id), bleu={"bible_test": 12.0})

    def no_finetune(*args, **kwargs):
        raise AssertionError("fine-tuned again")

    monkeypatch.setattr(finetune_module, "finetune", no_finetune)
    policy = BuildPolicy(finetune=0, finetune_archs=(a.arch_id(),), finetune_steps=1, finetune_work=tmp_path / "w")
    tuned, records = finetune_entries(Builder(), entries, targets, policy, lambda _: None, shipped)
    assert built == [("1t@80ms", weights), ("2t@70ms", weights)] and [e.bleu["bible_test"] for e in tuned] == [12, 12]
    assert records[0]["kept"] and records[0]["weights"] == weights and records[0]["steps"] == 110
    assert records[0]["storage"] == "int8-delta" and records[0]["taken_from"] == str(earlier)

    (earlier / weights).write_bytes(b"altered")
    with pytest.raises(ConfigError, match="does not match the sha256"):
        shipped_finetunes((earlier,), supernet)


def test_a_fine_tune_past_the_size_budget_is_scored_for_the_report_but_not_shipped(tiny_space, tmp_path, monkeypatch):
    """`--finetune-max-mb`: picks are shipped in order while their weights fit; one past the budget still has its
    fine-tuned BLEU recorded (the fine-tuned vs fine-tuned comparison counts it), but its entries keep the
    inherited weights and its file is removed."""
    import hat_engine.train.finetune as finetune_module
    from hat_engine.catalog.build import ProfileTarget
    from hat_engine.catalog.policy import BuildPolicy, finetune_entries

    a, b = tiny_space.largest(), tiny_space.smallest()
    entries = [_entry("1t", 80, a), _entry("1t", 40, b)]
    targets = {"1t": ProfileTarget("1t", "onnxruntime", 1, {})}

    class Builder:
        dir, data_dir = tmp_path, tmp_path

        def prepare(self, entry_id, arch, target, budget_ms, predicted_ms, fmt="onnx", source=None):
            return replace(next(x for x in entries if x.id == entry_id), bleu={"bible_test": 12.0})

    def finetune(supernet, arch, data_dir, work_dir, out, settings):
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(b"w" * 1024)
        return {"steps": 1}

    monkeypatch.setattr(finetune_module, "finetune", finetune)
    policy = BuildPolicy(finetune=0, finetune_archs=(a.arch_id(), b.arch_id()), finetune_steps=1,
                         finetune_work=tmp_path / "work", finetune_delta=False, finetune_max_mb=1.5 / 1024)  # fmt: skip
    out, records = finetune_entries(Builder(), entries, targets, policy, lambda _: None)
    assert [r["kept"] for r in records] == [True, False] and "past the" in records[1]["note"]
    assert records[1]["bleu_finetuned"] == {"bible_test": 12.0} and records[1]["weights"] is None
    assert [e.bleu["bible_test"] for e in out] == [12.0, 10.0]  # the second keeps its inherited weights' BLEU
    assert (tmp_path / f"finetuned/{a.arch_id()}.pt").is_file() and not (
        tmp_path / f"finetuned/{b.arch_id()}.pt"
    ).exists()
    with pytest.raises(ConfigError, match="finetune_max_mb"):
        BuildPolicy(finetune_max_mb=-1)
