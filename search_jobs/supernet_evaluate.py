"""`hat supernet evaluate`: BLEU + chrF (sacrebleu) of SubTransformers with inherited weights on the test sets."""

import argparse
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from search_jobs.subnets import add_supernet_args

_loaded: dict[str, Any] = {}  # this process's supernet and tokenizer (`_load`), for every arch it scores


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("evaluate", help="score SubTransformers (inherited weights) on the test sets")
    add_supernet_args(p)
    p.add_argument("--arch", action="append", default=[], help="largest | smallest | ARCH.yaml (repeatable)")
    p.add_argument("--random", type=int, default=0, help="also score N random SubTransformers")
    p.add_argument("--seed", type=int, default=1, help="seed of the random SubTransformers")
    p.add_argument("--beam", type=int, default=4)
    p.add_argument("--data", type=Path, default=Path("data"), help="corpus folder with the test sets")
    p.add_argument("--limit", type=int, help="score only the first N sentences of each test set")
    p.add_argument(
        "--split", choices=("test", "valid"), default="test", help="score the valid sets (for choosing a setting)"
    )
    p.add_argument(
        "--no-repeat-ngram",
        type=int,
        metavar="N",
        help="ban repeating a token N-gram in a hypothesis (0: off; default: as served, NO_REPEAT_NGRAM)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="score the archs in this many processes at once, each with --threads threads (default 1: in turn)",
    )
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--outputs", type=Path, help="also write each translation to DIR/LABEL.SET.de")
    p.set_defaults(run=run)


def _load(supernet: Path, tokenizer: Path | None, threads: int) -> None:
    """Load the supernet and tokenizer into this process once (a worker's initializer, or the job's own)."""
    import torch

    from hat_engine.model.supernet import load_supernet_with_tokenizer

    torch.set_num_threads(threads)
    _loaded["supernet"], _loaded["tokenizer"] = load_supernet_with_tokenizer(supernet, tokenizer)


def _score(label: str, arch_dict: dict, options: dict, advance: Callable[[int], None] = lambda _: None) -> dict:
    """One SubTransformer of the loaded supernet (`_load`) scored on every test set: its result record."""
    from hat_engine.config import ArchConfig
    from hat_engine.train.evaluation import evaluate

    arch = ArchConfig.from_dict(arch_dict)
    model = _loaded["supernet"].extract(arch).eval()
    scores = evaluate(model, _loaded["tokenizer"], on_batch=advance, **options)
    return {"label": label, "arch_id": arch.arch_id(), "params": model.num_parameters(),
            "no_repeat_ngram": options["no_repeat_ngram"], "arch": arch_dict, "scores": scores}  # fmt: skip


def _score_all(args: argparse.Namespace, archs: list[tuple[str, Any]], options: dict) -> list[dict]:
    """Every arch's record, in `archs`' order: in this process (its supernet loaded) with a bar over sentences,
    or in `--workers` spawned processes (each loads the supernet once) with a bar over archs."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from rich.console import Console
    from rich.progress import Progress

    from hat_engine.train.evaluation import test_sets

    with Progress(console=Console(stderr=True)) as progress:
        if args.workers == 1:
            sentences = sum(
                min(len(src), args.limit or len(src)) for src, _ in test_sets(args.data, args.split).values()
            )
            task = progress.add_task("translating", total=sentences * len(archs))
            return [
                _score(label, arch.to_dict(), options, lambda n: progress.advance(task, n)) for label, arch in archs
            ]
        task = progress.add_task(f"SubTransformers ({args.workers} processes)", total=len(archs))
        spawn = multiprocessing.get_context("spawn")  # a forked torch can deadlock in its thread pools
        init = (args.supernet, args.tokenizer, args.threads)
        with ProcessPoolExecutor(args.workers, mp_context=spawn, initializer=_load, initargs=init) as pool:
            futures = [pool.submit(_score, label, arch.to_dict(), options) for label, arch in archs]
            for future in futures:
                future.add_done_callback(lambda _: progress.advance(task, 1))
            return [future.result() for future in futures]


def run(args: argparse.Namespace) -> int:
    # Heavy imports (torch, matplotlib) stay inside run() so that every `hat` command starts fast.
    from rich.console import Console
    from rich.table import Table

    from hat_engine.model.decoding import check_no_repeat_ngram
    from hat_engine.model.translate import NO_REPEAT_NGRAM
    from hat_engine.train.evaluation import LOOPS_HEAD
    from search_jobs.subnets import arch_from_spec, spec_label

    no_repeat_ngram = NO_REPEAT_NGRAM if args.no_repeat_ngram is None else args.no_repeat_ngram
    try:
        check_no_repeat_ngram(no_repeat_ngram)
    except ValueError as exc:
        raise SystemExit(f"hat: error: --no-repeat-ngram: {exc}") from None
    if args.workers < 1 or args.threads < 1:
        raise SystemExit("hat: error: --workers and --threads must be at least 1")
    _load(args.supernet, args.tokenizer, args.threads)  # a bad path or tokenizer fails here, before any worker
    space = _loaded["supernet"].space
    archs = [(spec_label(spec), arch_from_spec(space, spec)) for spec in (args.arch or ["largest", "smallest"])]
    rng = random.Random(args.seed)
    archs += [(f"random-{i + 1}", space.sample(rng)) for i in range(args.random)]
    options = {"data_dir": args.data, "beam": args.beam, "limit": args.limit, "role": args.split,
               "with_outputs": args.outputs is not None, "no_repeat_ngram": no_repeat_ngram}  # fmt: skip
    results = _score_all(args, archs, options)
    for r in results:
        for name, result in r["scores"].items():
            if args.outputs is not None:
                args.outputs.mkdir(parents=True, exist_ok=True)
                (args.outputs / f"{r['label']}.{name}.de").write_text("\n".join(result.pop("outputs")) + "\n")
    table = Table(title=f"inherited weights, beam {args.beam}, no_repeat_ngram {no_repeat_ngram}")
    for column in ("SubTransformer", "params", *(f"{n} BLEU/chrF" for n in results[0]["scores"])):
        table.add_column(column)
    for r in results:
        cells = [
            f"{s['bleu']:.1f} / {s['chrf']:.1f} ({s['loops']} loops, {s[f'loops_first_{LOOPS_HEAD}']} in the first"
            f" {LOOPS_HEAD})"
            for s in r["scores"].values()
        ]
        table.add_row(f"{r['label']} ({r['arch_id']})", f"{r['params'] / 1e6:.2f}M", *cells)
    table.caption = "\n".join(
        f"{name} ({s['sentences']} sentences): {s['bleu_signature']} | {s['chrf_signature']}"
        for name, s in results[0]["scores"].items()
    )
    Console().print(table)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0
