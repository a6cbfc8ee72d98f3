"""Data-parallel SuperTransformer training on 2 CPU processes (gloo): the replicas stay identical.

Two ways in: the `Trainer` API under `torch.multiprocessing.spawn` (checks the data sharding and that only rank 0
writes), and `hat supernet train` under torchrun, as an operator runs it (checks the CLI path and resuming).
A tiny copy-task corpus and search space keep each run to a few seconds.
"""

import hashlib
import json
import os
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import yaml

from tests.copy_task import make_copy_task

pytestmark = pytest.mark.integration

STEPS = 6


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A tiny corpus (source == target) and space; returns the folder holding `data/` and `space.yaml`."""
    return make_copy_task(tmp_path_factory.mktemp("ddp"))


def _config(folder, out_dir, **overrides) -> dict:
    return {
        "data_dir": str(folder / "data"),
        "space": str(folder / "space.yaml"),
        "out_dir": str(out_dir),
        "max_tokens": 256,
        "lr": 3e-3,
        "warmup_steps": 4,
        "dropout": 0.1,  # masks differ per rank; the summed gradients still keep the replicas equal
        "validate_every": 10_000,
        "valid_sentences": 20,
        "bf16": False,
        "mixture": {},
        "max_steps": STEPS,
    } | overrides


def _digest(state_dict) -> str:
    h = hashlib.sha256()
    for name, tensor in state_dict.items():
        h.update(name.encode())
        h.update(tensor.detach().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _worker(rank: int, world_size: int, folder, store) -> None:
    """One rank: train STEPS steps into its own out_dir and report what it trained on and ended with."""
    import hat_engine.train.training as training
    from hat_engine.train.config import TrainConfig

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world_size)
    try:
        cfg = TrainConfig(**_config(folder, folder / f"out-{rank}"))
        trainer = training.Trainer(cfg, rank=rank, world_size=world_size)
        initial = _digest(trainer.model.state_dict())
        seen, make_batch = [], training.make_batch

        def recording(data, indices, *rest):
            if data is trainer.train_data:
                seen.append(list(indices))
            return make_batch(data, indices, *rest)

        training.make_batch = recording
        state = trainer.run()
        result = {
            "initial": initial,
            "final": _digest(trainer.model.state_dict()),
            "seen": seen,
            "epoch0": trainer.epoch_buckets(0),
            "step": state["step"],
            "tokens": state["tokens"],
        }
        (folder / f"result-{rank}.json").write_text(json.dumps(result))
    finally:
        dist.destroy_process_group()


def test_two_ranks_shard_the_data_and_end_identical(tiny_run):
    mp.spawn(_worker, args=(2, tiny_run, tiny_run / "store"), nprocs=2, join=True)
    r0, r1 = (json.loads((tiny_run / f"result-{rank}.json").read_text()) for rank in (0, 1))
    assert r0["final"] == r1["final"], "replicas diverged: gradients were not reduced across ranks"
    assert r0["initial"] == r1["initial"] and r0["final"] != r0["initial"]
    # Rank r takes buckets r, r+2, r+4, ... of the epoch's order: disjoint shards that together cover the epoch.
    assert r0["seen"] == r0["epoch0"][0 : 2 * STEPS : 2] and r1["seen"] == r1["epoch0"][1 : 2 * STEPS : 2]
    assert r0["step"] == r1["step"] == STEPS and r0["tokens"] == r1["tokens"]  # tokens of both ranks
    assert (tiny_run / "out-0" / "checkpoint.pt").is_file() and (tiny_run / "out-0" / "metrics.jsonl").is_file()
    assert not any((tiny_run / "out-1").iterdir()), "only rank 0 writes checkpoints and metrics"


def _torchrun(config, *extra) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "search_jobs.cli", "supernet", "train", "--config", str(config), "--threads", "1", *extra]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)


def test_hat_supernet_train_under_torchrun_and_resume(tiny_run, tmp_path):
    out = tmp_path / "run"
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump(_config(tiny_run, out, max_steps=4)))
    first = _torchrun(config)
    assert first.returncode == 0, first.stderr[-3000:]
    log = (out / "train.log").read_text()
    assert "2 rank(s) on cpu" in log and "parameters identical on all 2 ranks" in log
    assert log.count("command: hat") == 1, "only rank 0 logs"

    config.write_text(yaml.safe_dump(_config(tiny_run, out, max_steps=7)))
    second = _torchrun(config, "--resume", "--export", str(tmp_path / "supernet.pt"))
    assert second.returncode == 0, second.stderr[-3000:]
    log = (out / "train.log").read_text()
    assert "resumed exactly from checkpoint" in log and "stopped at step 7" in log
    assert log.count("parameters identical on all 2 ranks") == 2
    assert (tmp_path / "supernet.pt").is_file()
