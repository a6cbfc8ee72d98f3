"""`hat supernet train --config FILE`: train or resume the SuperTransformer with a live progress line.

Under torchrun (which sets WORLD_SIZE, RANK, LOCAL_RANK) it trains data-parallel: NCCL on one GPU per process
when CUDA is available, else gloo on the CPU. Only rank 0 logs, shows progress, checkpoints and exports:
    torchrun --standalone --nproc-per-node 2 -m search_jobs.cli supernet train --config configs/supernet.yaml
"""

import argparse
import dataclasses
import logging
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("train", help="train or resume the SuperTransformer")
    p.add_argument("--config", type=Path, required=True, help="training YAML (see configs/supernet.yaml)")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue from OUT_DIR/checkpoint.pt (exactly), else from the config's export (weights, step, data "
        "position; optimizer re-warmed), else start afresh; the log says which",
    )
    p.add_argument("--max-minutes", type=float, help="override the config's time limit (the whole run, all resumes)")
    p.add_argument("--sitting-minutes", type=float, help="stop this process after N minutes (checkpoint + export)")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads per process (default 1: on 2-core VMs 2 ranks "
        "x 1 thread under torchrun train faster than 1 x 2)",
    )
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="auto: CUDA when torch sees it")
    p.add_argument("--export", type=Path, help="write the supernet (fp16, spm.model beside it) here (default: config)")
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


def launch_env(env: Mapping[str, str]) -> tuple[int, int, int] | None:
    """(rank, world size, local rank) from the variables torchrun sets; None outside torchrun."""
    if "WORLD_SIZE" not in env:
        return None
    try:
        rank, world_size, local_rank = (int(env.get(k, "0")) for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    except ValueError:
        raise SystemExit("hat: error: RANK, WORLD_SIZE and LOCAL_RANK must be whole numbers") from None
    if not 0 <= rank < world_size:
        raise SystemExit(f"hat: error: RANK={rank} is outside WORLD_SIZE={world_size}")
    return rank, world_size, local_rank


@dataclass(frozen=True)
class TrainOptions:
    """What a training run is asked for besides its config file (the flags of `hat supernet train`)."""

    resume: bool = False
    max_minutes: float | None = None
    sitting_minutes: float | None = None
    threads: int = 1
    device: str = "auto"  # auto, cpu or cuda
    export: Path | None = None


def run(args: argparse.Namespace) -> int:
    options = TrainOptions(resume=args.resume, max_minutes=args.max_minutes, sitting_minutes=args.sitting_minutes,
                           threads=args.threads, device=args.device, export=args.export)  # fmt: skip
    train_supernet(args.config, options)
    return 0


def train_supernet(config: Path, options: TrainOptions = TrainOptions()) -> None:
    """Train (or resume) the supernet of `config`: in this process, or data-parallel as one rank under torchrun."""
    # Heavy imports (torch, matplotlib) stay inside so that every `hat` command starts fast.
    import torch
    import torch.distributed as dist

    if not config.is_file():
        raise SystemExit(f"hat: error: --config {config} does not exist")
    launch = launch_env(os.environ)
    if options.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("hat: error: --device cuda: torch sees no CUDA device here")
    if launch is None:
        cuda = options.device == "cuda" or (options.device == "auto" and torch.cuda.is_available())
        _train(config, options, rank=0, world_size=1, device="cuda" if cuda else "cpu")
        return
    rank, world_size, local_rank = launch
    if options.device != "cpu" and torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
        backend, device = "nccl", f"cuda:{local_rank}"
    else:
        backend, device = "gloo", "cpu"
    dist.init_process_group(backend)  # MASTER_ADDR / MASTER_PORT from torchrun
    try:
        _train(config, options, rank=rank, world_size=world_size, device=device)
    finally:
        dist.destroy_process_group()


def _train(config: Path, options: TrainOptions, rank: int, world_size: int, device: str) -> None:
    import torch

    from hat_engine.train.config import TrainConfig
    from hat_engine.train.plots import plot_training
    from hat_engine.train.training import METRICS, Trainer

    cfg = TrainConfig.from_yaml(config.read_text())
    if options.max_minutes is not None:
        cfg = dataclasses.replace(cfg, max_minutes=options.max_minutes)
    if options.export is not None:
        cfg = dataclasses.replace(cfg, export=str(options.export))
    if options.threads < 1:
        raise SystemExit(f"hat: error: --threads {options.threads}: use 1 or more")
    torch.set_num_threads(options.threads)
    if rank != 0:  # one log, one progress line, one set of files: rank 0's
        logging.getLogger().setLevel(logging.WARNING)
        trainer = Trainer(cfg, resume=options.resume, rank=rank, world_size=world_size, device=device)
        _stop_on_signals(trainer)
        trainer.run(sitting_minutes=options.sitting_minutes)
        trainer.replica_digests()
        return
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(out / "train.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    log = logging.getLogger("hat.supernet")
    log.info("command: hat %s", " ".join(sys.argv[1:]))
    log.info("config: %s", cfg.to_dict())
    trainer = Trainer(cfg, resume=options.resume, rank=rank, world_size=world_size, device=device)
    _stop_on_signals(trainer)
    batches = trainer.epoch_buckets(trainer.state["epoch"])
    log.info(
        "%d train pairs, %d batches per epoch of the mixture %s; supernet params %d, bf16 %s, threads %d, "
        "%d rank(s) on %s",
        len(trainer.train_data),
        len(batches),
        cfg.mixture,
        trainer.model.num_parameters(),
        trainer.bf16,
        options.threads,
        world_size,
        device,
    )
    started = time.time()
    state = trainer.run(on_progress=_progress, sitting_minutes=options.sitting_minutes)
    sys.stderr.write("\n")
    if world_size > 1:
        digests = trainer.replica_digests()
        if len(set(digests)) > 1:
            raise SystemExit(f"hat: error: the {world_size} ranks ended with different parameters: {digests}")
        log.info("parameters identical on all %d ranks (sha256 %s)", world_size, digests[0][:16])
    log.info(
        "stopped at step %d after %.1f min this run; %d target tokens in all; valid %s",
        state["step"],
        (time.time() - started) / 60,
        state["tokens"],
        state.get("last_valid"),
    )
    plot_training(out / METRICS, out / "loss.png")
    if cfg.export:
        log.info("exported %s (step %d)", cfg.export, state["step"])


def _stop_on_signals(trainer) -> None:
    """SIGTERM / SIGINT finish the current update, then checkpoint and export, instead of losing up to
    `checkpoint_minutes` of training."""
    import signal

    def stop(signum, _frame):
        logging.getLogger("hat.supernet").warning("signal %d: stopping after this update", signum)
        trainer.request_stop()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop)
