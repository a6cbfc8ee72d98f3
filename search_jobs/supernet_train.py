"""`hat supernet train --config FILE`: train or resume the SuperTransformer with a live progress line."""

import argparse
import dataclasses
import logging
import sys
import time
from pathlib import Path


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("train", help="train or resume the SuperTransformer")
    p.add_argument("--config", type=Path, required=True, help="training YAML (see configs/supernet.yaml)")
    p.add_argument("--resume", action="store_true", help="continue from OUT_DIR/checkpoint.pt if present")
    p.add_argument("--max-minutes", type=float, help="override the config's time limit")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    p.add_argument("--export", type=Path, help="also write the trained supernet (fp16) here")
    p.set_defaults(run=run)


def _progress(info: dict) -> None:
    elapsed, limit = info["elapsed"], info["limit_seconds"]
    rate = info["tokens"] / max(elapsed, 1e-9)
    line = (
        f"step {info['step']:>6} | epoch {info['epoch']} {info['epoch_fraction']:4.0%} | loss {info['loss']:.3f} "
        f"| {rate:,.0f} tgt tok/s | {elapsed / 60:5.1f}/{limit / 60:.0f} min "
        f"| ETA {max(limit - elapsed, 0) / 60:.1f} min"
    )
    if sys.stderr.isatty():
        sys.stderr.write("\r" + line)
    elif info["step"] % 50 == 0:
        sys.stderr.write(line + "\n")
    sys.stderr.flush()


def run(args: argparse.Namespace) -> int:
    # Heavy imports (torch, matplotlib) stay inside run() so that every `hat` command starts fast.
    import torch

    from hat_engine.plots import plot_training
    from hat_engine.training import METRICS, TrainConfig, Trainer

    if not args.config.is_file():
        raise SystemExit(f"hat: error: --config {args.config} does not exist")
    cfg = TrainConfig.from_yaml(args.config.read_text())
    if args.max_minutes is not None:
        cfg = dataclasses.replace(cfg, max_minutes=args.max_minutes)
    torch.set_num_threads(args.threads)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(out / "train.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    log = logging.getLogger("hat.supernet")
    log.info("command: hat %s", " ".join(sys.argv[1:]))
    log.info("config: %s", cfg.to_dict())
    trainer = Trainer(cfg, resume=args.resume)
    data = trainer.train_data
    log.info(
        "train pairs %d (%d target tokens per epoch), supernet params %d, threads %d",
        len(data),
        data.target_tokens(),
        trainer.model.num_parameters(),
        args.threads,
    )
    started = time.time()
    state = trainer.run(on_progress=_progress)
    sys.stderr.write("\n")
    log.info(
        "stopped at step %d after %.1f min this run; %d target tokens in all; valid %s",
        state["step"],
        (time.time() - started) / 60,
        state["tokens"],
        state.get("last_valid"),
    )
    plot_training(out / METRICS, out / "loss.png")
    if args.export:
        trainer.export(args.export)
        log.info("exported %s", args.export)
    return 0
