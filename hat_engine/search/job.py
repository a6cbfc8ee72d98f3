"""One search job: a host's latency predictor, the supernet's validation fitness, one SubTransformer per budget.

What `hat search` and `hat pipeline` both run: the predictor is checked before the supernet and data are read,
fitness scores can be kept across jobs (`fitness_cache`), and the results file is rewritten after every budget.
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from hat_engine.checksums import sha256_file
from hat_engine.errors import ConfigError
from hat_engine.hardware import native_bf16
from hat_engine.latency.predictor import MIN_KENDALL_TAU, LatencyPredictor, require_usable
from hat_engine.model.supernet import load_supernet_with_tokenizer
from hat_engine.search.evolution import EvolutionConfig, FitnessCache, GenerationStats, check_budgets, sweep
from hat_engine.search.fitness import ValidationFitness, load_scores, save_scores, validation_subset
from hat_engine.search.results import BudgetResult, SearchResults

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SearchJob:
    """What one search is asked for. `tokenizer` None: spm.model beside the supernet, else the corpus's;
    `bf16` None: where this CPU has native bf16."""

    predictor: Path
    supernet: Path
    out: Path
    budgets: tuple[float, ...]
    data: Path = Path("data")
    tokenizer: Path | None = None
    evolution: EvolutionConfig = field(default_factory=EvolutionConfig)
    valid_sentences: int = 25
    max_tokens: int = 4096
    bf16: bool | None = None
    threads: int = 1
    min_tau: float = MIN_KENDALL_TAU
    fitness_cache: Path | None = None


def load_fitness(supernet: Path, data: Path, tokenizer: Path | None, valid_sentences: int, max_tokens: int,
                 bf16: bool | None) -> ValidationFitness:  # fmt: skip
    """The supernet and its fixed validation subset of `data` as a fitness (the defaults of `SearchJob`)."""
    if tokenizer is None and not (supernet.parent / "spm.model").is_file():
        tokenizer = data / "spm.model"
    model, tok = load_supernet_with_tokenizer(supernet, tokenizer)
    valid = validation_subset(data, tok, valid_sentences)
    return ValidationFitness(model, valid, max_tokens, native_bf16("cpu") if bf16 is None else bf16)


def run_search(job: SearchJob, on_generation: Callable[[GenerationStats], None] | None = None,
               say: Callable[[str], None] = log.info) -> SearchResults:  # fmt: skip
    """Search every budget of `job`, writing `job.out` after each; the results as written at the end."""
    torch.set_num_threads(job.threads)
    budgets = sorted(set(float(b) for b in job.budgets))
    predictor = LatencyPredictor.load(job.predictor)
    require_usable(predictor, job.min_tau, str(job.predictor))
    fastest = check_budgets(predictor.space, predictor.predict, budgets)  # fail before the supernet and data are read
    fitness = load_fitness(job.supernet, job.data, job.tokenizer, job.valid_sentences, job.max_tokens, job.bf16)
    if predictor.space != fitness.supernet.space:
        raise ConfigError(f"{job.predictor} was fit for another search space than {job.supernet}; refit it")
    cfg = job.evolution
    settings = {
        "evolution": cfg.to_dict(), "budgets_ms": budgets, "supernet": str(job.supernet),
        "predictor": str(job.predictor), "data": str(job.data), "valid_sentences_per_split": job.valid_sentences,
        "valid_pairs": len(fitness.valid), "valid_target_tokens": fitness.valid.target_tokens(),
        "max_tokens": job.max_tokens, "bf16": fitness.bf16, "threads": job.threads,
        "fitness": "per-token validation NLL, weights inherited from the supernet",
        "warm_start": "each budget starts from the previous (smaller) budget's final population",
    }  # fmt: skip
    cache, cache_key = FitnessCache(), None
    if job.fitness_cache:
        cache_key = fitness.key(sha256_file(job.supernet))
        cache.scores.update(load_scores(job.fitness_cache, cache_key))
        settings["fitness_cache"] = {"path": str(job.fitness_cache), "scores_at_start": len(cache.scores)}
        say(f"fitness cache {job.fitness_cache}: {len(cache.scores)} scores from earlier runs")
    started, results = time.perf_counter(), []

    def record() -> SearchResults:
        search = {
            "budgets": [r.budget_ms for r in results], "generations": cfg.generations,
            "population": cfg.population, "minutes_per_budget": [r.minutes for r in results],
            "total_minutes": (time.perf_counter() - started) / 60, "evaluations": fitness.evaluations,
            "seconds_per_evaluation": fitness.seconds_per_evaluation,
        }  # fmt: skip
        return SearchResults(settings, search, tuple(results))

    def save(result) -> None:
        results.append(BudgetResult.from_dict(result.to_dict()))
        record().save(job.out)
        if cache_key is not None:
            save_scores(job.fitness_cache, cache_key, cache.scores)

    sweep(predictor.space, predictor.predict, fitness, budgets, cfg, on_generation=on_generation, cache=cache,
          on_result=save, fastest=fastest)  # fmt: skip
    final = record()
    final.save(job.out)
    return final
