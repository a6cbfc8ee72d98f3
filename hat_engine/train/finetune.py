"""Fine-tuning one searched SubTransformer after the search (HAT Table 5: inherited vs fine-tuned weights).

The supernet is trained further on the fixed architecture only (every other weight gets no gradient and stays
as it was), for a fixed number of steps (every arch alike, reproducible) or a fixed wall-clock time, and the
SubTransformer is extracted from it. The result is a standalone model file the catalog can carry as an entry's
source weights.
"""

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from hat_engine.config import ArchConfig
from hat_engine.data.batching import splits_with_role
from hat_engine.model.supernet import load_supernet
from hat_engine.train.config import TrainConfig
from hat_engine.train.training import Trainer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FinetuneSettings:
    minutes: float | None = 8.0  # None: no time limit, `max_steps` decides
    lr: float = 3e-4
    warmup_steps: int = 50
    max_tokens: int = 4096
    seed: int = 1
    threads: int = 2
    max_steps: int = 1_000_000


def finetune(supernet_path: Path, arch: ArchConfig, data_dir: Path, work_dir: Path, out: Path,
             settings: FinetuneSettings = FinetuneSettings()) -> dict:  # fmt: skip
    """Fine-tune `arch` from the supernet's weights; write the extracted model (fp16) to `out`.

    Returns what was done: steps, target tokens, minutes, the last validation loss. `work_dir` holds the
    scratch checkpoint and the training log; a finished run found there is reused (resumable)."""
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    supernet, extra = load_supernet(supernet_path)
    trained = extra.get("train_config", {})
    present = set(splits_with_role(Path(data_dir), "train"))
    mixture = {k: w for k, w in trained.get("mixture", trained.get("upsample", {})).items() if k in present}
    cfg = TrainConfig(
        data_dir=str(data_dir), space=supernet.space, out_dir=str(work_dir), seed=settings.seed,
        max_tokens=settings.max_tokens, lr=settings.lr, warmup_steps=settings.warmup_steps,
        max_minutes=math.inf if settings.minutes is None else settings.minutes, max_steps=settings.max_steps,
        validate_every=10**9,
        init_from=str(supernet_path), arch=arch, mixture=mixture,
    )  # fmt: skip
    threads = torch.get_num_threads()
    torch.set_num_threads(settings.threads)
    try:
        trainer = Trainer(cfg, resume=True)
        state = trainer.run()
    finally:
        torch.set_num_threads(threads)
    model = trainer.model.extract(arch)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    model.save(out, dtype=torch.float16)
    log.info("fine-tuned %s for %d steps into %s", arch.arch_id(), state["step"], out)
    return {"steps": state["step"], "target_tokens": state["tokens"], "minutes": round(state["elapsed"] / 60, 2),
            "valid_loss": state.get("last_valid", {})}  # fmt: skip
