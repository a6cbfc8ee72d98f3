"""`hat search`: HAT's evolutionary search (Sec. 3.4), one SubTransformer per latency budget.

Latency comes from a trained predictor (`hat latency fit`), fitness is the validation loss of the SubTransformer
with the SuperTransformer's weights on a fixed subset. `--measure-one` times the fitness to size that subset.
"""

import argparse
import math
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from search_jobs.subnets import add_supernet_args

if TYPE_CHECKING:
    from hat_engine.search.evolution import GenerationStats
    from hat_engine.search.results import SearchResults


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("search", help="evolutionary search: one SubTransformer per latency budget")
    p.add_argument("--budgets", default="20,40,80", help="comma-separated latency budgets in ms (default 20,40,80)")
    p.add_argument("--predictor", type=Path, help="latency predictor of this host (`hat latency fit`)")
    p.add_argument("--min-tau", type=float, default=None,
                   help="refuse a predictor whose held-out Kendall tau is below this (default 0.5)")  # fmt: skip
    add_supernet_args(p)
    p.add_argument("--data", type=Path, default=Path("data"), help="corpus folder with the valid splits")
    help_valid = "first N pairs of each valid split (default 25; size it with --measure-one)"
    p.add_argument("--valid-sentences", type=int, default=25, help=help_valid)
    p.add_argument("--max-tokens", type=int, default=4096, help="tokens per validation batch")
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                   help="bf16 autocast (default: where this CPU has native bf16; emulated bf16 is slower)")  # fmt: skip
    p.add_argument("--population", type=int, default=125)
    p.add_argument("--parents", type=int, default=25)
    p.add_argument("--mutations", type=int, default=50)
    p.add_argument("--crossovers", type=int, default=50)
    p.add_argument("--generations", type=int, default=30)
    p.add_argument("--mutation-prob", type=float, default=0.3)
    p.add_argument("--max-resample", type=int, default=1000, help="draws per child before a budget is infeasible")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", type=Path, help="results JSON (rewritten after every budget)")
    help_cache = ("fitness scores kept across runs (e.g. one search per hardware profile: the validation loss does "
                  "not depend on the hardware); used only when supernet and validation subset match")  # fmt: skip
    p.add_argument("--fitness-cache", type=Path, help=help_cache)
    p.add_argument("--measure-one", action="store_true", help="only time the fitness of a few archs and exit")
    p.set_defaults(run=run)


def parse_budgets(spec: str) -> list[float]:
    """'20,40,80' -> [20.0, 40.0, 80.0]; anything else is one clear error line."""
    budgets = []
    for item in spec.split(","):
        try:
            value = float(item)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and value > 0):
            raise SystemExit(f"hat: error: --budgets item {item.strip()!r}: use positive milliseconds, e.g. 20,40,80")
        budgets.append(value)
    return sorted(set(budgets))


def _config(args: argparse.Namespace):
    from hat_engine.search.evolution import EvolutionConfig

    return EvolutionConfig(
        population=args.population, parents=args.parents, mutations=args.mutations, crossovers=args.crossovers,
        generations=args.generations, mutation_prob=args.mutation_prob, seed=args.seed,
        max_resample=args.max_resample,
    )  # fmt: skip


def _measure_one(args: argparse.Namespace, cfg) -> int:
    from hat_engine.search.job import load_fitness

    fitness = load_fitness(args.supernet, args.data, args.tokenizer, args.valid_sentences, args.max_tokens, args.bf16)
    space = fitness.supernet.space
    rng = random.Random(args.seed)
    archs = [("largest", space.largest()), ("smallest", space.smallest())]
    archs += [(f"random-{i + 1}", space.sample(rng)) for i in range(3)]
    fitness([space.smallest()])  # warm-up: first-call allocations and bf16 kernels
    fitness.seconds, fitness.evaluations = 0.0, 0
    valid = fitness.valid
    print(f"validation subset: {len(valid)} pairs, {valid.target_tokens()} target tokens, bf16={fitness.bf16}")
    for label, arch in archs:
        started = time.perf_counter()
        loss = fitness([arch])[0]
        print(f"{label:>10} {arch.arch_id()}: loss {loss:.4f} in {time.perf_counter() - started:.3f} s")
    per_eval = fitness.seconds_per_evaluation
    budgets = len(parse_budgets(args.budgets))
    # Generation 0 of every budget after the first is the previous final population: already scored.
    worst = cfg.population + budgets * (cfg.generations - 1) * (cfg.mutations + cfg.crossovers)
    print(
        f"mean {per_eval:.3f} s per evaluation ({args.threads} thread(s)); {budgets} budget(s) need at most "
        f"{worst} evaluations = {worst * per_eval / 60:.1f} min; repeats come from the cache (a simulated "
        "sweep needed ~87 % of that)"
    )
    return 0


def print_generation(generations: int) -> Callable[["GenerationStats"], None]:
    """The progress line of each generation, out of `generations`."""

    def progress(s: "GenerationStats") -> None:
        print(
            f"budget {s.budget_ms:g} ms | gen {s.generation + 1:2d}/{generations} | best loss "
            f"{s.best_fitness:.4f} at {s.best_latency_ms:.1f} ms | mean {s.mean_fitness:.4f} | "
            f"evals {s.evaluations} | {s.elapsed_s:.0f} s",
            flush=True,
        )

    return progress


def print_results(results: "SearchResults", out: Path) -> None:
    """One row per budget: the SubTransformer kept, its predicted latency and loss, and the search's cost."""
    from rich.console import Console
    from rich.table import Table

    evolution, cost = results.settings["evolution"], results.search
    table = Table(title=f"hat search: {evolution['generations']} generations x {evolution['population']} "
                        f"(seed {evolution['seed']})")  # fmt: skip
    for column in ("budget ms", "arch_id", "predicted ms", "valid loss", "embed enc/dec", "dec layers", "evals", "min"):
        table.add_column(column)
    for r in results.results:
        table.add_row(
            f"{r.budget_ms:g}", r.arch.arch_id(), f"{r.predicted_latency_ms:.1f}", f"{r.fitness:.4f}",
            f"{r.arch.encoder_embed_dim}/{r.arch.decoder_embed_dim}", str(r.arch.decoder_depth),
            str(r.evaluations), f"{r.minutes:.1f}",
        )  # fmt: skip
    table.caption = (
        f"{cost['evaluations']} evaluations, {cost['seconds_per_evaluation']:.3f} s each, "
        f"{cost['total_minutes']:.1f} min in all; results in {out}"
    )
    Console().print(table)


def run(args: argparse.Namespace) -> int:
    import torch

    from hat_engine.latency.predictor import MIN_KENDALL_TAU
    from hat_engine.search.job import SearchJob, run_search

    budgets, cfg = parse_budgets(args.budgets), _config(args)
    if not args.measure_one and (args.out is None or args.predictor is None):
        raise SystemExit("hat: error: --predictor and --out are required (or pass --measure-one)")
    if args.valid_sentences < 1 or args.max_tokens < 64 or args.threads < 1:
        raise SystemExit("hat: error: --valid-sentences and --threads must be >= 1, --max-tokens >= 64")
    if args.min_tau is not None and not -1 <= args.min_tau <= 1:
        raise SystemExit(f"hat: error: --min-tau {args.min_tau:g}: a Kendall tau lies in [-1, 1]")
    if args.measure_one:
        torch.set_num_threads(args.threads)
        return _measure_one(args, cfg)
    job = SearchJob(
        predictor=args.predictor, supernet=args.supernet, out=args.out, budgets=tuple(budgets), data=args.data,
        tokenizer=args.tokenizer, evolution=cfg, valid_sentences=args.valid_sentences, max_tokens=args.max_tokens,
        bf16=args.bf16, threads=args.threads, min_tau=MIN_KENDALL_TAU if args.min_tau is None else args.min_tau,
        fitness_cache=args.fitness_cache,
    )  # fmt: skip
    results = run_search(job, on_generation=print_generation(cfg.generations), say=lambda line: print(line, flush=True))
    print_results(results, args.out)
    return 0
