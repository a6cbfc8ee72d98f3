"""`hat supernet average SNAPSHOT... --out FILE`: one supernet whose weights are the mean of a run's snapshots."""

import argparse
from pathlib import Path


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("average", help="average the weights of one run's snapshots (snapshot_every)")
    p.add_argument(
        "snapshots", type=Path, nargs="+", help="saved supernets of one run, e.g. runs/supernet-v2/snapshots/*.pt"
    )
    p.add_argument("--last", type=int, help="average only the last N by name (step-NNNNNNN.pt: by step)")
    p.add_argument("--out", type=Path, required=True, help="write the average here (fp16, spm.model beside it)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from hat_engine.data.tokenizer import tokenizer_beside
    from hat_engine.errors import ConfigError
    from hat_engine.model.supernet import export_supernet
    from hat_engine.train.averaging import average_supernets

    missing = [str(p) for p in args.snapshots if not p.is_file()]
    if missing:
        raise ConfigError(f"no such snapshot: {', '.join(missing)}")
    if args.last is not None and args.last < 1:
        raise ConfigError(f"--last {args.last}: use a whole number >= 1")
    if args.out.resolve() in {p.resolve() for p in args.snapshots}:
        raise ConfigError(f"--out {args.out} is one of the inputs: write the average elsewhere")
    paths = sorted(args.snapshots)[-args.last :] if args.last else sorted(args.snapshots)
    model, extra = average_supernets(paths)
    export_supernet(args.out, model, extra, tokenizer_beside(paths[0]))
    print(f"{args.out}: the mean of {len(paths)} supernets, steps {', '.join(map(str, extra['averaged_steps']))}")
    return 0
