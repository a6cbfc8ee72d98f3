"""HAT's uniform sampling vs the sandwich rule with in-place distillation (BigNAS), at equal wall-clock.

Both arms start from the same checkpoint of the long run (weights, optimizer, step, data position: a fork, so
the comparison is of what each rule does with the next N minutes, not of a cold start), train side by side on
one core each for the same minutes, and are judged on the valid sets by BLEU (greedy; `--beam`) and by
cross entropy per reference sentence of the largest and the smallest SubTransformer.

    .venv/bin/python bench/sampling_pilot.py --from runs/supernet-v2/checkpoint.pt --minutes 30 [--limit 300]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
ARMS = ("uniform", "sandwich")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--from", dest="source", type=Path, default=REPO / "runs/supernet-v2/checkpoint.pt")
    p.add_argument("--config", type=Path, default=REPO / "configs/supernet.yaml")
    p.add_argument("--minutes", type=float, default=30.0, help="wall-clock minutes per arm (side by side)")
    p.add_argument("--limit", type=int, default=300, help="valid sentences per set for BLEU")
    p.add_argument("--beam", type=int, default=1)
    p.add_argument("--out", type=Path, default=REPO / "runs/pilot-sampling")
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args()
    if not args.source.is_file():
        raise SystemExit(f"no checkpoint at {args.source}: run the long training first (docs/training.md)")
    base = yaml.safe_load(args.config.read_text())
    procs = {}
    for arm in ARMS:
        folder = args.out / arm
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        shutil.copyfile(args.source, folder / "checkpoint.pt")  # the fork: --resume continues it exactly
        cfg = {**base, "out_dir": str(folder), "export": None, "sampling": arm, "validate_every": 10**9}
        (folder / "config.yaml").write_text(yaml.safe_dump(cfg))
        cmd = [sys.executable, "-m", "search_jobs.cli", "supernet", "train", "--config", str(folder / "config.yaml"),
               "--resume", "--threads", "1", "--sitting-minutes", str(args.minutes)]  # fmt: skip
        log = open(folder / "stdout.log", "w")
        procs[arm] = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                      env={**os.environ, "OMP_NUM_THREADS": "1"})  # fmt: skip
    for arm, proc in procs.items():
        if proc.wait() != 0:
            raise SystemExit(f"the {arm} arm failed: see {args.out / arm / 'stdout.log'}")
    result = {"source": str(args.source), "minutes": args.minutes, "beam": args.beam, "limit": args.limit}
    for arm in ARMS:
        result[arm] = _judge(args.out / arm, args)
        print(arm, json.dumps(result[arm]), flush=True)
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


def _judge(folder: Path, args: argparse.Namespace) -> dict:
    """Updates and tokens of the arm, the last validation (per-token NLL x pieces per sentence) and BLEU."""
    import torch

    from hat_engine.data.batching import read_split, splits_with_role
    from hat_engine.data.tokenizer import Tokenizer
    from hat_engine.train.config import TrainConfig

    state = torch.load(folder / "checkpoint.pt", weights_only=True)["extra"]["state"]
    cfg = TrainConfig.from_yaml((folder / "config.yaml").read_text())
    tokenizer = Tokenizer(cfg.tokenizer or Path(cfg.data_dir) / "spm.model")
    per_sentence = {}
    for name in splits_with_role(Path(cfg.data_dir), "valid"):
        refs = read_split(Path(cfg.data_dir), name)[1][: cfg.valid_sentences]
        pieces = sum(len(ids) + 1 for ids in tokenizer.encode(refs)) / max(len(refs), 1)
        for key, nll in state.get("last_valid", {}).items():
            if key.endswith("/" + name):
                per_sentence[key] = round(nll * pieces, 2)
    out = folder / "eval.json"
    cmd = [sys.executable, "-m", "search_jobs.cli", "supernet", "evaluate", "--supernet", str(folder / "checkpoint.pt"),
           "--tokenizer", str(tokenizer.path), "--data", cfg.data_dir, "--split", "valid", "--limit", str(args.limit),
           "--beam", str(args.beam), "--arch", "largest", "--arch", "smallest", "--json", str(out)]  # fmt: skip
    subprocess.run(cmd, cwd=REPO, check=True, capture_output=True)
    scores = {
        r["label"]: {k: (s["bleu"], s["loops"]) for k, s in r["scores"].items()} for r in json.loads(out.read_text())
    }
    return {"step": state["step"], "tokens": state["tokens"], "nats_per_sentence": per_sentence,
            "bleu_and_loops": scores}  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
