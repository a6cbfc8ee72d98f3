"""Latency-constrained evolutionary search over SubTransformers (HAT, Wang et al. ACL 2020, Sec. 3.4).

Each generation keeps the `parents` fittest architectures (elitism, so the best fitness never gets worse), and
fills the rest of the population with gene-level mutations of random parents and uniform crossovers of two.
A candidate whose *predicted* latency exceeds the budget is rejected and drawn again. Fitness is any
`list[ArchConfig] -> list[float]` where lower is better (the product uses validation loss with inherited
weights, see `hat_engine.search.fitness`); a shared `FitnessCache` means an architecture is evaluated once per sweep.
Torch-free: the latency predictor and the fitness come in as plain callables.
"""

from __future__ import annotations

import logging
import math
import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from hat_engine.config import ArchConfig, SearchSpace
from hat_engine.errors import ConfigError, InfeasibleBudgetError, check_latencies
from hat_engine.search.genes import crossover, mutate

log = logging.getLogger(__name__)

ArchScorer = Callable[[list[ArchConfig]], list[float]]


@dataclass(frozen=True)
class EvolutionConfig:
    """HAT's search settings; `population` must equal parents + mutations + crossovers."""

    population: int = 125
    parents: int = 25
    mutations: int = 50
    crossovers: int = 50
    generations: int = 30
    mutation_prob: float = 0.3
    seed: int = 1
    max_resample: int = 1000  # draws per child before the budget is declared infeasible

    def __post_init__(self) -> None:
        if self.parents < 1 or self.mutations < 0 or self.crossovers < 0 or self.generations < 1:
            raise ConfigError(
                f"parents={self.parents} and generations={self.generations} must be >= 1, "
                f"mutations={self.mutations} and crossovers={self.crossovers} >= 0"
            )
        if self.parents + self.mutations + self.crossovers != self.population:
            raise ConfigError(
                f"population={self.population} must equal parents + mutations + crossovers = "
                f"{self.parents} + {self.mutations} + {self.crossovers}; change one of them"
            )
        if not 0.0 <= self.mutation_prob <= 1.0:
            raise ConfigError(f"mutation_prob={self.mutation_prob} must lie in [0, 1]")
        if self.max_resample < 1:
            raise ConfigError(f"max_resample={self.max_resample} must be >= 1")

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(frozen=True)
class GenerationStats:
    """Progress of one generation (`evaluations` counts new fitness evaluations so far in this budget)."""

    budget_ms: float
    generation: int
    best_fitness: float
    mean_fitness: float
    best_latency_ms: float
    best_arch_id: str
    evaluations: int
    elapsed_s: float


@dataclass
class SearchResult:
    """The outcome of one budget: the best SubTransformer, its scores, history, and the final population."""

    budget_ms: float
    best: ArchConfig
    fitness: float
    latency_ms: float
    history: list[GenerationStats]
    evaluations: int
    population: list[ArchConfig]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "budget_ms": self.budget_ms,
            "arch": self.best.to_dict(),
            "arch_id": self.best.arch_id(),
            "predicted_latency_ms": self.latency_ms,
            "fitness": self.fitness,
            "evaluations": self.evaluations,
            "minutes": self.seconds / 60,
            "history": [{k: v for k, v in vars(g).items() if k != "budget_ms"} for g in self.history],
        }


@dataclass
class FitnessCache:
    """Fitness by arch_id, shared across budgets; `evaluations` counts the architectures handed to fitness_fn."""

    scores: dict[str, float] = field(default_factory=dict)
    evaluations: int = 0

    def evaluate(self, archs: Sequence[ArchConfig], fitness_fn: ArchScorer) -> list[float]:
        """Scores of `archs`; `fitness_fn` sees each not-yet-scored architecture once, in first-seen order."""
        missing: dict[str, ArchConfig] = {}
        for arch in archs:
            key = arch.arch_id()
            if key not in self.scores and key not in missing:
                missing[key] = arch
        if missing:
            values = list(fitness_fn(list(missing.values())))
            if len(values) != len(missing):
                raise ValueError(f"fitness_fn returned {len(values)} scores for {len(missing)} architectures")
            self.scores.update(zip(missing, map(float, values), strict=True))
            self.evaluations += len(missing)
        return [self.scores[arch.arch_id()] for arch in archs]


# --- search -----------------------------------------------------------------------------------------------


@dataclass
class _Breeder:
    """Draws candidates that fit the budget: random samples, mutations and crossovers of given parents."""

    space: SearchSpace
    latency_fn: ArchScorer
    budget_ms: float
    cfg: EvolutionConfig
    rng: random.Random
    fastest: ArchConfig  # the fallback when nothing drawn fits

    def _feasible(
        self, make: Callable[[], ArchConfig], n: int, what: str, strict: bool = True
    ) -> list[tuple[ArchConfig, float]]:
        """`n` candidates from `make` whose predicted latency fits; each slot gets `max_resample` draws, then
        InfeasibleBudgetError (or, not `strict`, what was found). Drawn in rounds, one candidate per open slot,
        so the predictor sees batches, not single rows."""
        out: list[tuple[ArchConfig, float]] = []
        for _ in range(self.cfg.max_resample):
            if len(out) >= n:
                return out
            candidates = [make() for _ in range(n - len(out))]
            predicted = self.latency_fn(candidates)
            out += [(a, float(ms)) for a, ms in zip(candidates, predicted, strict=True) if ms <= self.budget_ms]
        if len(out) < n and strict:
            raise InfeasibleBudgetError(
                f"budget {self.budget_ms:g} ms: only {len(out)} of {n} {what} fit after "
                f"{self.cfg.max_resample} draws each; raise the budget or max_resample"
            )
        return out

    def initial(self, n: int, feasible: list[ArchConfig]) -> list[tuple[ArchConfig, float]]:
        """`n` random samples that fit. Under a tight budget uniform samples rarely fit, so the slots left
        open are filled with mutations of what fits (`feasible`, the samples found, or the fastest arch)."""
        out = self._feasible(lambda: self.space.sample(self.rng), n, "random samples", strict=False)
        if len(out) < n:
            pool = feasible + [a for a, _ in out] or [self.fastest]
            space, rng, p = self.space, self.rng, self.cfg.mutation_prob
            out += self._feasible(lambda: mutate(rng.choice(pool), space, rng, p), n - len(out), "initial archs")
        return out

    def offspring(self, parents: list[ArchConfig]) -> list[tuple[ArchConfig, float]]:
        """`mutations` mutated random parents, then `crossovers` children of two distinct random parents."""
        space, rng, p = self.space, self.rng, self.cfg.mutation_prob

        def two() -> tuple[ArchConfig, ArchConfig]:
            if len(parents) < 2:  # a lone parent crosses with itself
                return parents[0], parents[0]
            a, b = rng.sample(parents, 2)
            return a, b

        mutations = self._feasible(lambda: mutate(rng.choice(parents), space, rng, p), self.cfg.mutations, "mutations")
        crossovers = self._feasible(lambda: crossover(*two(), space, rng), self.cfg.crossovers, "crossovers")
        return mutations + crossovers


def fastest_arch(
    space: SearchSpace, latency_fn: ArchScorer, samples: int = 2000, seed: int = 0, rounds: int = 30, keep: int = 16
) -> tuple[ArchConfig, float]:
    """The arch with the lowest predicted latency: the best of `space.smallest()` and `samples` seeded random
    archs, then `rounds` of local search (mutations of the `keep` fastest so far, each gene redrawn with
    probability 0.1). The smallest arch need not be the fastest one (a one-layer decoder with wider FFNs can beat
    it on a CPU), nor is sampling alone enough to find the fastest: docs/search-and-catalog.md has the figures
    measured on the shipped profiles; a unit test holds the first point."""
    rng = random.Random(seed)
    archs = [space.smallest()] + [space.sample(rng) for _ in range(samples)]

    def score(candidates: list[ArchConfig]) -> list[tuple[ArchConfig, float]]:
        return list(zip(candidates, (float(ms) for ms in latency_fn(candidates)), strict=True))

    scored = sorted(score(archs), key=lambda t: t[1])
    check_latencies([ms for _, ms in scored], "fastest_arch: predicted latencies")
    per_round = max(samples // 10, keep)
    for _ in range(rounds):
        elite = scored[:keep]
        children = [mutate(rng.choice(elite)[0], space, rng, 0.1) for _ in range(per_round)]
        scored = sorted(elite + score(children), key=lambda t: t[1])
    return scored[0]


def check_budgets(
    space: SearchSpace,
    latency_fn: ArchScorer,
    budgets: Sequence[float],
    fastest: tuple[ArchConfig, float] | None = None,
) -> tuple[ArchConfig, float]:
    """The fastest SubTransformer and its predicted latency (`fastest_arch`, or `fastest` from an earlier call);
    InfeasibleBudgetError for a budget that is not positive or below it."""
    if not budgets:
        raise InfeasibleBudgetError("no latency budget given")
    for budget_ms in budgets:
        if not (math.isfinite(budget_ms) and budget_ms > 0):
            raise InfeasibleBudgetError(f"budget {budget_ms!r} ms must be a positive finite number")
    arch, minimum = fastest or fastest_arch(space, latency_fn)
    check_latencies([minimum], "the fastest SubTransformer's predicted latency")
    for budget_ms in budgets:
        if minimum > budget_ms:
            raise InfeasibleBudgetError(
                f"budget {budget_ms:g} ms is below the predicted latency of the fastest SubTransformer "
                f"({minimum:.2f} ms); use a budget of at least {minimum:.2f} ms"
            )
    return arch, minimum


def evolve(
    space: SearchSpace,
    latency_fn: ArchScorer,
    fitness_fn: ArchScorer,
    budget_ms: float,
    cfg: EvolutionConfig = EvolutionConfig(),
    initial_population: Sequence[ArchConfig] | None = None,
    on_generation: Callable[[GenerationStats], None] | None = None,
    cache: FitnessCache | None = None,
    fastest: tuple[ArchConfig, float] | None = None,
) -> SearchResult:
    """Search `space` for the fittest SubTransformer whose predicted latency is <= `budget_ms`.

    `initial_population` (e.g. the previous budget's) is kept where feasible and topped up with random
    feasible samples (see `_Breeder.initial`). Generation 0 is that population; every later one is the parents
    plus their offspring. Fitness is looked up in `cache` first: pass one cache to share work across budgets.
    `fastest`: `check_budgets`' answer for this space and predictor, when the caller already has it."""
    fastest = check_budgets(space, latency_fn, [budget_ms], fastest)
    cache = cache if cache is not None else FitnessCache()
    breeder = _Breeder(space, latency_fn, budget_ms, cfg, random.Random(cfg.seed), fastest[0])
    started, evaluations_before = time.perf_counter(), cache.evaluations
    latency: dict[str, float] = {}
    population: list[ArchConfig] = []
    seeds = list(initial_population or [])[: cfg.population]
    if seeds:
        for arch, ms in zip(seeds, latency_fn(seeds), strict=True):
            if ms <= budget_ms:
                population.append(arch)
                latency[arch.arch_id()] = float(ms)
    fresh = breeder.initial(cfg.population - len(population), population)
    history: list[GenerationStats] = []
    for generation in range(cfg.generations):
        for arch, ms in fresh:
            latency[arch.arch_id()] = float(ms)
        population += [arch for arch, _ in fresh]
        scores = cache.evaluate(population, fitness_fn)
        unique = {arch.arch_id(): (score, arch) for arch, score in zip(population, scores, strict=True)}
        ranked = sorted(unique.items(), key=lambda item: (item[1][0], item[0]))  # ties broken by arch_id
        parents = [arch for _, (_, arch) in ranked[: cfg.parents]]
        best_id, (best_fitness, _) = ranked[0]
        stats = GenerationStats(
            budget_ms=budget_ms,
            generation=generation,
            best_fitness=best_fitness,
            mean_fitness=statistics.fmean(scores),
            best_latency_ms=latency[best_id],
            best_arch_id=best_id,
            evaluations=cache.evaluations - evaluations_before,
            elapsed_s=time.perf_counter() - started,
        )
        history.append(stats)
        log.debug("budget %g generation %d: best %.4f", budget_ms, generation, best_fitness)
        if on_generation is not None:
            on_generation(stats)
        if generation == cfg.generations - 1:
            break
        fresh = breeder.offspring(parents)
        population = list(parents)
    best = history[-1]
    return SearchResult(
        budget_ms=budget_ms,
        best=unique[best.best_arch_id][1],
        fitness=best.best_fitness,
        latency_ms=best.best_latency_ms,
        history=history,
        evaluations=best.evaluations,
        population=population,
        seconds=time.perf_counter() - started,
    )


def sweep(
    space: SearchSpace,
    latency_fn: ArchScorer,
    fitness_fn: ArchScorer,
    budgets: Sequence[float],
    cfg: EvolutionConfig = EvolutionConfig(),
    on_generation: Callable[[GenerationStats], None] | None = None,
    cache: FitnessCache | None = None,
    on_result: Callable[[SearchResult], None] | None = None,
    fastest: tuple[ArchConfig, float] | None = None,
) -> list[SearchResult]:
    """One search per budget, ascending; each starts from the previous budget's final population (all of it
    still fits, the budget only grows) and every budget shares one fitness cache. Every budget is checked
    before any search starts, so an infeasible one fails fast; `on_result` sees each budget's result.
    `fastest`: `check_budgets`' answer, when the caller already checked the budgets."""
    ordered = sorted(set(float(b) for b in budgets))
    if not ordered:
        raise InfeasibleBudgetError("no latency budgets given; pass at least one, e.g. 20,40,80")
    fastest = check_budgets(space, latency_fn, ordered, fastest)
    cache = cache if cache is not None else FitnessCache()
    results: list[SearchResult] = []
    previous: list[ArchConfig] | None = None
    for budget in ordered:
        result = evolve(space, latency_fn, fitness_fn, budget, cfg, previous, on_generation, cache, fastest)
        results.append(result)
        previous = result.population
        if on_result is not None:
            on_result(result)
    return results


def budget_ladder(fastest_predicted_ms: float, measured_ms: Sequence[float], n: int,
                  top_quantile: float = 0.92) -> list[float]:  # fmt: skip
    """`n` latency budgets spanning a profile's feasible range, evenly on a log scale: from just above the
    fastest predicted SubTransformer (`fastest_arch`; nothing is feasible below it) to the `top_quantile` of
    the measured dataset (at least 1.5x the bottom)."""
    if n < 1 or not 0 < top_quantile < 1:
        raise ConfigError(f"budget_ladder: need n >= 1 ({n}) and 0 < top_quantile ({top_quantile}) < 1")
    check_latencies([fastest_predicted_ms], "budget_ladder: the fastest predicted latency")
    check_latencies(list(measured_ms), "budget_ladder: the measured latencies")
    lo = fastest_predicted_ms * 1.03
    hi = max(statistics.quantiles(sorted(measured_ms), n=100, method="inclusive")[round(top_quantile * 100) - 1],
             lo * 1.5)  # fmt: skip
    return [round(lo * (hi / lo) ** (i / max(n - 1, 1)), 1) for i in range(n)]
