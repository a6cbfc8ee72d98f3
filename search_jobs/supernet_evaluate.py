"""`hat supernet evaluate`: BLEU + chrF (sacrebleu) of SubTransformers with inherited weights on the test sets."""

import argparse
import json
import random
from pathlib import Path

from search_jobs.subnets import add_supernet_args


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
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--outputs", type=Path, help="also write each translation to DIR/LABEL.SET.de")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    # Heavy imports (torch, matplotlib) stay inside run() so that every `hat` command starts fast.
    import torch
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    from hat_engine.model.decoding import check_no_repeat_ngram
    from hat_engine.model.translate import NO_REPEAT_NGRAM
    from hat_engine.train.evaluation import LOOPS_HEAD, evaluate, test_sets
    from search_jobs.subnets import arch_from_spec, load, spec_label

    no_repeat_ngram = NO_REPEAT_NGRAM if args.no_repeat_ngram is None else args.no_repeat_ngram
    try:
        check_no_repeat_ngram(no_repeat_ngram)
    except ValueError as exc:
        raise SystemExit(f"hat: error: --no-repeat-ngram: {exc}") from None
    torch.set_num_threads(args.threads)
    supernet, tokenizer = load(args)
    space = supernet.space
    archs = [(spec_label(spec), arch_from_spec(space, spec)) for spec in (args.arch or ["largest", "smallest"])]
    rng = random.Random(args.seed)
    archs += [(f"random-{i + 1}", space.sample(rng)) for i in range(args.random)]
    sentences = sum(min(len(src), args.limit or len(src)) for src, _ in test_sets(args.data, args.split).values())
    results = []
    with Progress(console=Console(stderr=True)) as progress:
        task = progress.add_task("translating", total=sentences * len(archs))
        for label, arch in archs:
            model = supernet.extract(arch).eval()
            advance = lambda n: progress.advance(task, n)  # noqa: E731
            scores = evaluate(
                model,
                tokenizer,
                args.data,
                args.beam,
                args.limit,
                advance,
                args.split,
                args.outputs is not None,
                no_repeat_ngram,
            )
            for name, result in scores.items():
                if args.outputs is not None:
                    args.outputs.mkdir(parents=True, exist_ok=True)
                    (args.outputs / f"{label}.{name}.de").write_text("\n".join(result.pop("outputs")) + "\n")
            results.append(
                {
                    "label": label,
                    "arch_id": arch.arch_id(),
                    "params": model.num_parameters(),
                    "no_repeat_ngram": no_repeat_ngram,
                    "arch": arch.to_dict(),
                    "scores": scores,
                }
            )
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
