"""`hat translate --supernet CKPT --arch largest|smallest|ARCH.yaml`: English lines on stdin -> German on stdout."""

import argparse
import sys

from search_jobs.subnets import add_supernet_args


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("translate", help="translate stdin lines (English) to stdout (German)")
    add_supernet_args(p)
    p.add_argument("--arch", default="largest", help="largest | smallest | ARCH.yaml (default: largest)")
    p.add_argument("--beam", type=int, default=4, help="beam size (1 = greedy; default 4)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    # Heavy imports (torch, matplotlib) stay inside run() so that every `hat` command starts fast.
    import torch

    from hat_engine.train.evaluation import translate
    from search_jobs.subnets import arch_from_spec, load

    if not 1 <= args.beam <= 32:
        raise SystemExit(f"hat: error: --beam {args.beam} must lie in 1..32")
    torch.set_num_threads(args.threads)
    supernet, tokenizer = load(args)
    model = supernet.extract(arch_from_spec(supernet.space, args.arch)).eval()
    lines = [line.strip() for line in sys.stdin]
    texts = [line for line in lines if line]
    translated = iter(translate(model, tokenizer, texts, beam=args.beam))
    for line in lines:
        print(next(translated) if line else "")
    return 0
