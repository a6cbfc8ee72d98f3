"""Evolutionary search (HAT Sec. 3.4) with a fake predictor and a fake fitness; the real fitness on a tiny supernet."""

import json
import math
import random
from dataclasses import replace

import pytest
import torch

from hat_engine.config import ArchConfig, SearchSpace
from hat_engine.data.batching import ParallelData, read_split, splits_with_role
from hat_engine.errors import ConfigError
from hat_engine.search.evolution import (
    EvolutionConfig,
    FitnessCache,
    InfeasibleBudgetError,
    crossover,
    evolve,
    mutate,
    sweep,
)
from hat_engine.search.fitness import ValidationFitness, validation_subset

SMALL = EvolutionConfig(population=20, parents=5, mutations=8, crossovers=7, generations=8, seed=3)
# More choices per gene than tiny_space, and depths where cross_layers can exceed the encoder depth.
WIDE = SearchSpace((16, 32), (32, 48, 64), (1, 2, 4), (1, 2, 3), (1, 2, 3), (1, 2, 3), qkv_dim=32)


def fake_ms(arch: ArchConfig) -> float:
    """Grows with every gene; on the tiny space: smallest 11 ms, largest 40 ms."""
    ms = arch.encoder_embed_dim / 16 + arch.decoder_embed_dim / 16
    ms += sum(layer.ffn_dim / 32 + layer.self_heads for layer in arch.encoder_layers)
    ms += sum(g.ffn_dim / 32 + g.self_heads + g.cross_heads + g.cross_layers for g in arch.decoder_layers)
    return ms


def fake_latency(archs: list[ArchConfig]) -> list[float]:
    return [fake_ms(a) for a in archs]


class FakeFitness:
    """Loss falls with capacity, plus a fixed per-arch wobble so that the ranking is not just the latency's."""

    def __init__(self) -> None:
        self.seen: list[ArchConfig] = []

    def __call__(self, archs: list[ArchConfig]) -> list[float]:
        self.seen += archs
        return [10.0 - fake_ms(a) / 5 + int(a.arch_id(), 16) % 7 * 0.05 for a in archs]


def test_every_result_and_every_evaluated_arch_respects_its_budget(tiny_space):
    fitness = FakeFitness()
    results = sweep(tiny_space, fake_latency, fitness, [30, 15, 22], SMALL)
    assert [r.budget_ms for r in results] == [15, 22, 30]
    for r in results:
        assert r.latency_ms == fake_ms(r.best) <= r.budget_ms
        assert all(fake_ms(a) <= r.budget_ms for a in r.population)
        tiny_space.validate(r.best)
    assert all(fake_ms(a) <= 30 for a in fitness.seen)


def test_best_fitness_never_worsens_and_the_search_improves(tiny_space):
    result = evolve(tiny_space, fake_latency, FakeFitness(), 25, SMALL)
    best = [g.best_fitness for g in result.history]
    assert len(best) == SMALL.generations
    assert all(later <= earlier for earlier, later in zip(best, best[1:], strict=False))
    assert result.fitness == best[-1] and result.fitness <= min(g.mean_fitness for g in result.history)
    assert [g.generation for g in result.history] == list(range(SMALL.generations))


def test_same_seed_same_search(tiny_space):
    def run(seed: int):
        cfg = EvolutionConfig(population=20, parents=5, mutations=8, crossovers=7, generations=6, seed=seed)
        r = evolve(tiny_space, fake_latency, FakeFitness(), 25, cfg)
        return r.best, [g.best_fitness for g in r.history], [a.arch_id() for a in r.population]

    assert run(7) == run(7)


def test_cache_evaluates_each_arch_once_across_budgets(tiny_space):
    fitness, cache = FakeFitness(), FitnessCache()
    results = sweep(tiny_space, fake_latency, fitness, [20, 30], SMALL, cache=cache)
    ids = [a.arch_id() for a in fitness.seen]
    assert len(ids) == len(set(ids)) == cache.evaluations == sum(r.evaluations for r in results)
    assert set(cache.scores) == set(ids)
    again = evolve(tiny_space, fake_latency, fitness, 20, SMALL, cache=cache)  # same search, all cached
    assert again.evaluations == 0 and again.best == results[0].best


def test_sweep_warm_starts_from_the_previous_population(tiny_space):
    first, second = sweep(tiny_space, fake_latency, FakeFitness(), [18, 28], SMALL)
    # The previous population fills generation 0 entirely (all of it fits 28 ms) and is already scored.
    assert second.history[0].evaluations == 0
    assert second.history[0].best_fitness == first.fitness
    assert second.fitness <= first.fitness


def test_infeasible_budget_is_a_typed_error(tiny_space):
    with pytest.raises(InfeasibleBudgetError, match=r"budget 5 ms .*fastest SubTransformer \(11\.00 ms\)"):
        evolve(tiny_space, fake_latency, FakeFitness(), 5, SMALL)
    with pytest.raises(InfeasibleBudgetError, match="budget 5 ms"):
        sweep(tiny_space, fake_latency, FakeFitness(), [20, 5], SMALL)
    # Only the smallest arch fits 11 ms: random draws almost never hit it, so resampling gives up clearly.
    cfg = EvolutionConfig(population=20, parents=5, mutations=8, crossovers=7, generations=2, max_resample=3)
    with pytest.raises(InfeasibleBudgetError, match="fit after 3 draws"):
        evolve(tiny_space, fake_latency, FakeFitness(), 11, cfg)


def test_config_errors_name_the_values():
    with pytest.raises(ConfigError, match="population=100 must equal"):
        EvolutionConfig(population=100)
    with pytest.raises(ConfigError, match="mutation_prob=1.5"):
        EvolutionConfig(mutation_prob=1.5)


def test_mutate_and_crossover_children_always_validate(tiny_space):
    rng = random.Random(0)
    for space in (tiny_space, WIDE):
        for _ in range(800):
            a, b = space.sample(rng), space.sample(rng)
            child = mutate(a, space, rng, rng.random())
            space.validate(child)
            mixed = crossover(a, b, space, rng)
            space.validate(mixed)
            assert mixed.encoder_embed_dim in (a.encoder_embed_dim, b.encoder_embed_dim)
            assert mixed.decoder_depth in (a.decoder_depth, b.decoder_depth)
            assert mutate(a, space, rng, 0.0) == a
            assert crossover(a, a, space, rng) == a


def test_mutation_keeps_layers_position_wise_when_the_depth_changes():
    rng = random.Random(1)
    kept = compared = 0
    for _ in range(500):
        a = WIDE.sample(rng)
        child = mutate(a, WIDE, rng, 0.3)
        for i in range(min(a.encoder_depth, child.encoder_depth)):
            kept += child.encoder_layers[i] == a.encoder_layers[i]
            compared += 1
    # Kept layers stay with probability 0.7 ** 2 = 0.49 (both genes unmutated); a fresh draw matches 1 in 9.
    assert kept / compared > 0.4


def test_crossover_copies_layers_only_the_deeper_parent_has():
    rng = random.Random(2)
    for _ in range(500):
        a, b = WIDE.sample(rng), WIDE.sample(rng)
        child = crossover(a, b, WIDE, rng)
        deeper = a if a.decoder_depth >= b.decoder_depth else b
        for i in range(min(a.decoder_depth, b.decoder_depth), child.decoder_depth):
            got, want = child.decoder_layers[i], deeper.decoder_layers[i]
            assert (got.ffn_dim, got.self_heads, got.cross_heads) == (want.ffn_dim, want.self_heads, want.cross_heads)
            assert got.cross_layers == want.cross_layers or want.cross_layers > child.encoder_depth


def test_validation_fitness_matches_validation_loss(tiny_supernet, tiny_space):
    gen = torch.Generator().manual_seed(0)
    lengths = (3, 5, 7, 4, 6)
    src = [torch.randint(4, 50, (n,), generator=gen).tolist() for n in lengths]
    tgt = [torch.randint(4, 50, (n + 1,), generator=gen).tolist() for n in lengths]
    valid = ParallelData(src, tgt)
    fitness = ValidationFitness(tiny_supernet, valid, max_tokens=64, bf16=False)
    archs = [tiny_space.largest(), tiny_space.smallest(), tiny_space.sample(random.Random(2))]
    losses = fitness(archs)
    assert all(math.isfinite(x) and x > 0 for x in losses)
    assert fitness.evaluations == 3 and fitness.seconds > 0
    for arch, loss in zip(archs, losses, strict=True):  # against plain cross entropy, one sentence at a time
        tiny_supernet.set_active(arch)
        total = 0.0
        for s, t in zip(src, tgt, strict=True):
            logits = tiny_supernet(torch.tensor([s + [3]]), torch.tensor([[2] + t]))[0]
            total += torch.nn.functional.cross_entropy(logits, torch.tensor(t + [3]), reduction="sum").item()
        assert loss == pytest.approx(total / sum(len(t) + 1 for t in tgt), rel=1e-5)
    assert not tiny_supernet.training


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A tiny built corpus (valid split of 12 pairs) with its SentencePiece model."""
    from hat_engine.data import BuildOptions, build_corpus

    folder = tmp_path_factory.mktemp("corpus")
    rng = random.Random(0)
    words = "alpha beta gamma delta epsilon zeta eta theta".split()
    files = {}
    for role, n in (("train", 60), ("valid", 12), ("test", 5)):
        lines = [" ".join(rng.choice(words) for _ in range(rng.randint(1, 8))) for _ in range(n)]
        (folder / f"{role}.txt").write_text("\n".join(lines))
        files[f"{role}-src"] = files[f"{role}-tgt"] = folder / f"{role}.txt"
    build_corpus(BuildOptions(out=folder / "data", custom=files, vocab_size=40))
    return folder / "data"


def test_validation_subset_takes_the_first_pairs_sorted_by_length(corpus):
    from hat_engine.data.tokenizer import Tokenizer

    tokenizer = Tokenizer(corpus / "spm.model")
    subset = validation_subset(corpus, tokenizer, 5)
    (name,) = splits_with_role(corpus, "valid")
    first = tokenizer.encode(read_split(corpus, name)[0][:5])
    assert sorted(subset.src) == sorted(first) and len(subset) == 5
    lengths = [len(s) for s in subset.src]
    assert lengths == sorted(lengths)
    with pytest.raises(ConfigError):
        validation_subset(corpus, tokenizer, 0)


def test_search_command_writes_one_result_per_budget(corpus, tiny_space, tmp_path, capsys):
    from hat_engine.config import ModelConfig
    from hat_engine.data.tokenizer import Tokenizer
    from hat_engine.latency.predictor import LatencyMLP, LatencyPredictor, features
    from hat_engine.model.supernet import SuperTransformer, save_supernet
    from search_jobs.cli import main

    t = Tokenizer(corpus / "spm.model")
    torch.manual_seed(0)
    config = ModelConfig(t.vocab_size, pad_id=t.pad_id, unk_id=t.unk_id, bos_id=t.bos_id, eos_id=t.eos_id)
    save_supernet(tmp_path / "supernet.pt", SuperTransformer(tiny_space, config))
    n = len(features(tiny_space.largest(), tiny_space, "hat"))
    ones = torch.ones(n)
    # Untrained MLP, scaled to a constant 20 ms (fitting one would cost seconds of optimizer start-up).
    # A constant ranks nothing (tau 0): this test lowers the floor to 0 to get past the usability check.
    constant = LatencyPredictor(
        tiny_space, "hat", LatencyMLP(n, 8, 2), 0 * ones, ones, 0.0, 1.0, scale=0.0, offset=20.0
    )
    constant.save(tmp_path / "pred.pt", extra={"profile_id": "test-1t", "kendall_tau": 0.0, "mape": 0.0, "n_test": 10})
    out = tmp_path / "results.json"
    small = ["--population", "8", "--parents", "2", "--mutations", "3", "--crossovers", "3", "--generations", "2"]
    files = ["--predictor", str(tmp_path / "pred.pt"), "--supernet", str(tmp_path / "supernet.pt")]
    argv = ["search", "--budgets", "40,30", *files, "--data", str(corpus), "--valid-sentences", "4", "--out", str(out)]
    argv += ["--min-tau", "0"]
    argv += small
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "budget 30 ms | gen  2/2" in printed and "budget 40 ms | gen  1/2" in printed
    report = json.loads(out.read_text())
    assert [r["budget_ms"] for r in report["results"]] == [30, 40]
    for r in report["results"]:
        assert r["predicted_latency_ms"] == pytest.approx(20.0) and len(r["history"]) == 2
        assert r["arch_id"] == ArchConfig.from_dict(r["arch"]).arch_id() and math.isfinite(r["fitness"])
    assert report["settings"]["evolution"]["population"] == 8 and report["settings"]["valid_pairs"] == 4


def test_bad_budgets_are_one_clear_line():
    from search_jobs.search import parse_budgets

    assert parse_budgets("40, 20,20") == [20.0, 40.0]
    for spec in ("20,abc", "0", "-5", "inf", ""):
        with pytest.raises(SystemExit, match="hat: error: --budgets item"):
            parse_budgets(spec)


def test_tight_budget_fills_the_first_population_from_mutations_of_what_fits(tiny_space):
    # About 1 in 37 uniform samples fits 13 ms: 20 draws per slot leave gaps that mutations of the fitting fill.
    cfg = EvolutionConfig(population=20, parents=5, mutations=8, crossovers=7, generations=3, max_resample=20)
    result = evolve(tiny_space, fake_latency, FakeFitness(), 13, cfg)
    assert all(fake_ms(a) <= 13 for a in result.population) and result.latency_ms <= 13


def test_fitness_scores_persist_only_under_the_same_key(tiny_supernet, tmp_path):
    from hat_engine.errors import DataError
    from hat_engine.search.fitness import load_scores, save_scores

    valid = ParallelData([[5, 6, 7], [8, 9]], [[5, 6], [7, 8, 9]])
    key = ValidationFitness(tiny_supernet, valid, max_tokens=64, bf16=False).key("abc")
    path = tmp_path / "cache.json"
    assert load_scores(path, key) == {}  # nothing saved yet
    save_scores(path, key, {"a1": 2.5})
    assert load_scores(path, key) == {"a1": 2.5}
    other_subset = ValidationFitness(tiny_supernet, ParallelData([[5, 6]], [[7]]), 64, False).key("abc")
    assert other_subset != key and load_scores(path, other_subset) == {}
    assert load_scores(path, {**key, "supernet_sha256": "other"}) == {}
    path.write_text("{not json")
    with pytest.raises(DataError, match="not a fitness cache"):
        load_scores(path, key)


@pytest.mark.integration  # seconds, not milliseconds: runs with the integration tests
def test_the_floor_is_the_fastest_arch_not_the_smallest():
    from hat_engine.search.evolution import check_budgets, fastest_arch

    def narrow_ffn_is_slow(archs):  # like a CPU where a 1-layer decoder with a wide FFN beats a narrow deep one
        return [fake_ms(a) + sum(64 / g.ffn_dim for g in a.decoder_layers) * 4 + 3 * len(a.decoder_layers)
                for a in archs]  # fmt: skip

    smallest_ms = narrow_ffn_is_slow([WIDE.smallest()])[0]
    arch, ms = fastest_arch(WIDE, narrow_ffn_is_slow)
    assert ms < smallest_ms and arch != WIDE.smallest() and narrow_ffn_is_slow([arch]) == [ms]
    assert check_budgets(WIDE, narrow_ffn_is_slow, [ms]) == (arch, ms)  # a budget between the two is feasible
    result = evolve(WIDE, narrow_ffn_is_slow, FakeFitness(), (ms + smallest_ms) / 2, SMALL)
    assert result.latency_ms <= (ms + smallest_ms) / 2
    with pytest.raises(InfeasibleBudgetError, match="fastest SubTransformer"):
        check_budgets(WIDE, narrow_ffn_is_slow, [ms * 1.5, ms * 0.99])
    floors = []  # the floor is found once per sweep, not once per budget and again in each search

    def counting(archs):
        floors.extend([1] if len(archs) > 1000 else [])
        return narrow_ffn_is_slow(archs)

    sweep(WIDE, counting, FakeFitness(), [ms * 1.2, ms * 1.5, ms * 2], replace(SMALL, generations=2))
    assert floors == [1]
    checked = check_budgets(WIDE, counting, [ms * 1.2])  # `hat search` checks its budgets before it loads anything
    sweep(WIDE, counting, FakeFitness(), [ms * 1.2], replace(SMALL, generations=2), fastest=checked)
    assert floors == [1, 1]  # ... and the sweep reuses that answer


def test_the_floor_search_goes_past_random_sampling():
    """On the 2-thread profile the best of 2,000 samples was 6 ms above the predictor's minimum; so the ladder's
    floor sat where 2-layer decoders fit and no 1-layer one was ever searched. Here the minimum needs one value in
    each of 12 encoder genes and a 1-layer decoder: 1 in ~10^6 samples has it, the local search finds it."""
    from hat_engine.search.evolution import fastest_arch

    space = SearchSpace((192, 256), (512, 768, 1024), (2, 4), (6,), (1, 2, 3, 4, 5, 6), (1, 2, 3), qkv_dim=256)

    def picky(archs):  # fastest with every encoder FFN at 768 and 4 heads, and one decoder layer
        return [20.0 + sum((g.ffn_dim != 768) + (g.self_heads != 4) for g in a.encoder_layers)
                + 5 * len(a.decoder_layers) for a in archs]  # fmt: skip

    sampled = fastest_arch(space, picky, rounds=0)[1]
    arch, ms = fastest_arch(space, picky)
    assert ms == 25.0 < sampled and len(arch.decoder_layers) == 1
    assert fastest_arch(space, picky) == (arch, ms)  # seeded


def test_budget_ladder_spans_the_feasible_range_on_a_log_scale():
    from hat_engine.search.evolution import budget_ladder

    measured = [float(x) for x in range(30, 130)]
    ladder = budget_ladder(40.0, measured, 5)
    assert ladder[0] == pytest.approx(41.2) and ladder[-1] == pytest.approx(121.0, abs=0.1)
    ratios = [b / a for a, b in zip(ladder, ladder[1:], strict=False)]
    assert len(ladder) == 5 and max(ratios) - min(ratios) < 0.01
    assert budget_ladder(200.0, measured, 3)[-1] == pytest.approx(309.0)  # the dataset is all below: 1.5x the bottom
    with pytest.raises(ConfigError):
        budget_ladder(40.0, measured, 0)


@pytest.mark.parametrize(
    ("fastest", "measured"),
    [(-3.2, [30.0, 60.0]), (float("nan"), [30.0, 60.0]), (0.0, [30.0]), (40.0, []), (40.0, [30.0, float("nan")]),
     (40.0, [30.0, -1.0]), (float("inf"), [30.0])],
)  # fmt: skip
def test_budget_ladder_refuses_latencies_that_are_not_positive_numbers(fastest, measured):
    """The quick pipeline once crashed here with `type complex doesn't define __round__` on a negative floor."""
    from hat_engine.errors import LatencyError
    from hat_engine.search.evolution import budget_ladder

    with pytest.raises(LatencyError, match="positive finite|no latencies"):
        budget_ladder(fastest, measured, 3)


def test_check_budgets_refuses_bad_budgets_and_a_bad_floor(tiny_space):
    from hat_engine.errors import LatencyError
    from hat_engine.search.evolution import check_budgets

    for budgets in ([], [float("nan")], [float("inf")], [-5.0], [0.0]):
        with pytest.raises(InfeasibleBudgetError):
            check_budgets(tiny_space, lambda archs: [10.0] * len(archs), budgets)
    with pytest.raises(LatencyError, match="positive finite"):
        check_budgets(tiny_space, lambda archs: [-1.0] * len(archs), [20.0])
