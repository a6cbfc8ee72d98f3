"""SuperTransformer training (HAT §3.2): one sampled SubTransformer per update, weights shared by all.

Token-bucketed batches from a weighted mixture of the corpus' train splits, label-smoothed cross entropy, Adam
with inverse-sqrt warm-up, bf16 autocast where the device has native bf16 (fp32 elsewhere: emulated bf16 is
several times slower). The sampled arch of step `n` depends only on (seed, n), as in HAT, so a resumed or
distributed run trains the same sequence of SubTransformers. The sandwich rule (BigNAS) trains the largest, the
smallest and one random SubTransformer on every batch, the two smaller ones distilled in place from the largest.

Two ways to continue: a checkpoint in `out_dir` (weights, optimizer, step and data position: exact), or, on a
machine without it, the fp16 export (`export`, committed to git): weights, step and data position, with a fresh
optimizer whose learning rate is re-warmed over `rewarm_steps`.

Data-parallel training (`rank`, `world_size`; the caller sets up `torch.distributed`, e.g. under torchrun): every
rank trains the same SubTransformer in a step on its own bucket (rank r of n takes buckets r, r+n, ... of the
epoch's order), and gradients are summed across ranks by hand rather than by `DistributedDataParallel`, since an
elastic supernet leaves different parameters unused in each step. Only rank 0 writes checkpoints and metrics.
"""

import hashlib
import json
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.distributed as dist

from hat_engine.config import ModelConfig
from hat_engine.data.batching import (
    concat,
    epoch_batches,
    make_batch,
    mixture_indices,
    mixture_splits,
    read_split,
    splits_with_role,
    tokenize,
)
from hat_engine.data.tokenizer import TOKENIZER_FILE, Tokenizer, tokenizer_beside
from hat_engine.errors import CheckpointError, ConfigError
from hat_engine.hardware import native_bf16
from hat_engine.model.supernet import SuperTransformer, export_supernet, load_supernet, save_supernet
from hat_engine.train.config import TrainConfig, archs_for_step, lr_at
from hat_engine.train.loss import loss_on, validation_batches, validation_loss

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"
SNAPSHOTS = "snapshots"


def parameter_digest(model: torch.nn.Module) -> str:
    """sha256 of every parameter and buffer, bit for bit: equal digests mean identical replicas."""
    h = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


class Trainer:
    """Builds data, model and optimizer from a `TrainConfig`; `run()` trains until a limit and checkpoints.

    With `world_size > 1` this is one rank of a data-parallel run in an initialised `torch.distributed` group.
    """

    def __init__(
        self,
        cfg: TrainConfig,
        resume: bool = False,
        *,
        rank: int = 0,
        world_size: int = 1,
        device: str | torch.device = "cpu",
    ):
        if not 0 <= rank < world_size:
            raise ConfigError(f"rank {rank} is outside world size {world_size}")
        if world_size > 1 and not dist.is_initialized():
            raise ConfigError(f"world size {world_size} needs torch.distributed initialised first (e.g. torchrun)")
        self.rank, self.world_size, self.device = rank, world_size, torch.device(device)
        self.cfg, self.out = cfg, Path(cfg.out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        data_dir = Path(cfg.data_dir)
        # Weights continue on their own tokenizer (beside them), never on the data folder's by default: a corpus
        # built afresh trains another of the same size, and fine-tuning on its ids took BLEU 20.2 to 2.6.
        beside = tokenizer_beside(cfg.init_from) if cfg.init_from else None
        self.tokenizer = Tokenizer(cfg.tokenizer or beside or data_dir / TOKENIZER_FILE)
        self.bf16 = native_bf16(str(self.device)) if cfg.bf16 == "auto" else bool(cfg.bf16)
        self.space = cfg.space
        train_splits = mixture_splits(data_dir, cfg.mixture)
        parts = [tokenize(self.tokenizer, *read_split(data_dir, name)) for name in train_splits]
        self.train_data = concat(parts)
        self.parts = [(name, len(part)) for name, part in zip(train_splits, parts, strict=True)]
        self.valid = {}
        for name in splits_with_role(data_dir, "valid"):
            src, tgt = read_split(data_dir, name)
            data = tokenize(self.tokenizer, src[: cfg.valid_sentences], tgt[: cfg.valid_sentences])
            tk = self.tokenizer
            self.valid[name] = validation_batches(data, cfg.max_tokens, tk.pad_id, tk.bos_id, tk.eos_id)
        t = self.tokenizer
        model_config = ModelConfig(
            t.vocab_size, pad_id=t.pad_id, unk_id=t.unk_id, bos_id=t.bos_id, eos_id=t.eos_id, dropout=cfg.dropout
        )
        self.state = {"step": 0, "epoch": 0, "position": 0, "elapsed": 0.0, "tokens": 0}
        self.rewarm_from: int | None = None
        checkpoint, export = self.out / CHECKPOINT, Path(cfg.export) if cfg.export else None
        if resume and checkpoint.is_file():
            self.model, extra = load_supernet(checkpoint)
            self._optimizer()
            self.optimizer.load_state_dict(extra["optimizer"])
            self.state.update(extra["state"])
            self.rewarm_from = self.state.get("rewarm_from")
            self.resumed = f"resumed exactly from checkpoint {checkpoint} at step {self.state['step']}"
        elif resume and export is not None and export.is_file():
            self._check_tokenizer(export)
            self.model, extra = load_supernet(export)
            self._optimizer()
            self.state.update(extra["state"])
            self.rewarm_from = self.state["rewarm_from"] = self.state["step"]
            self.resumed = (
                f"no checkpoint in {self.out}: continued from the export {export} at step {self.state['step']} "
                f"(epoch {self.state['epoch']}, batch {self.state['position']}), fresh optimizer re-warmed over "
                f"{cfg.rewarm_steps} steps"
            )
        elif cfg.init_from:
            self._check_tokenizer(Path(cfg.init_from))
            self.model, _ = load_supernet(cfg.init_from)
            self._optimizer()
            self.resumed = f"started from the weights of {cfg.init_from} (fresh optimizer)"
        else:
            torch.manual_seed(cfg.seed)
            self.model = SuperTransformer(self.space, model_config)
            self._optimizer()
            self.resumed = "started from scratch" + (" (nothing to resume)" if resume else "")
        log.info("%s", self.resumed)
        if self.model.model_config.vocab_size != t.vocab_size:
            raise ConfigError(f"supernet vocab {self.model.model_config.vocab_size} != tokenizer vocab {t.vocab_size}")
        if world_size > 1:
            self._start_replicas()

    def _check_tokenizer(self, weights: Path) -> None:
        """Weights continue only on the tokenizer they were trained with (`export` writes it beside them): a
        different one of the same vocabulary size would pass every shape check and feed the model foreign ids."""
        beside = tokenizer_beside(weights)
        if beside is not None and beside.read_bytes() != self.tokenizer.path.read_bytes():
            raise ConfigError(f"{weights} was trained with the tokenizer beside it, {beside}, not with "
                              f"{self.tokenizer.path}; set tokenizer: {beside}")  # fmt: skip

    def _optimizer(self) -> None:
        self.model.to(self.device)  # before the optimizer sees the parameters (and moves any loaded state to them)
        self.optimizer = torch.optim.Adam(
            self.model.parameters(),
            lr=self.cfg.lr,
            betas=self.cfg.adam_betas,
            weight_decay=self.cfg.weight_decay,
            foreach=True,  # one kernel per group of tensors instead of a Python loop over ~200 parameters
        )

    def _start_replicas(self) -> None:
        """Every rank starts from rank 0's weights at the same step; dropout then differs per rank, like the data."""
        steps: list[int | None] = [None] * self.world_size
        dist.all_gather_object(steps, self.state["step"])
        if len(set(steps)) > 1:
            raise CheckpointError(
                f"ranks start at different steps {steps}: put out_dir {self.out} on storage that every rank reads"
            )
        for tensor in [*self.model.parameters(), *self.model.buffers()]:
            dist.broadcast(tensor.data, src=0)
        torch.manual_seed(self.cfg.seed * 7919 + self.rank)

    def _sum_over_ranks(self, value: float) -> float:
        if self.world_size == 1:
            return value
        total = torch.tensor([float(value)], dtype=torch.float64, device=self.device)
        dist.all_reduce(total)
        return total.item()

    def _reduce_gradients(self) -> None:
        """Sum the gradients of all ranks (each loss is already divided by the tokens of all ranks). Parameters
        that no rank used this step keep `grad=None`, so Adam skips them exactly as in a single-process run."""
        params = [p for p in self.model.parameters() if p.requires_grad]
        used = torch.tensor([p.grad is not None for p in params], dtype=torch.int32, device=self.device)
        dist.all_reduce(used, op=dist.ReduceOp.MAX)
        params = [p for p, flag in zip(params, used.tolist(), strict=True) if flag]
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        flat = torch.cat([p.grad.reshape(-1) for p in params])  # one collective instead of one per tensor
        dist.all_reduce(flat)
        offset = 0
        for p in params:
            p.grad.copy_(flat[offset : offset + p.numel()].view_as(p.grad))
            offset += p.numel()

    def request_stop(self) -> None:
        """Stop after the current update (e.g. on SIGTERM): `run` then validates, checkpoints and exports."""
        self.stop_requested = True

    def _should_stop(self, started: float, sitting_ends: float) -> bool:
        """Step or time limit reached, or a stop requested; under DDP rank 0 decides, so every rank runs the same
        steps. `max_minutes` counts the whole run across resumes; `sitting_ends` is this process's own limit."""
        now = time.time()
        stop = (
            self.state["step"] >= self.cfg.max_steps
            or (now - started) >= self.cfg.max_minutes * 60
            or now >= sitting_ends
            or getattr(self, "stop_requested", False)
        )
        if self.world_size > 1:
            flag = torch.tensor([int(stop)], device=self.device)
            dist.broadcast(flag, src=0)
            stop = bool(flag.item())
        return stop

    def replica_digests(self) -> list[str]:
        """`parameter_digest` of every rank, gathered (one entry when not distributed)."""
        digests: list[str | None] = [None] * self.world_size
        if self.world_size == 1:
            return [parameter_digest(self.model)]
        dist.all_gather_object(digests, parameter_digest(self.model))
        return digests

    def checkpoint(self) -> None:
        if self.rank != 0:
            return
        tmp = self.out / (CHECKPOINT + ".tmp")
        extra = {
            "optimizer": self.optimizer.state_dict(),
            "state": dict(self.state),
            "train_config": self.cfg.to_dict(),
        }
        save_supernet(tmp, self.model, extra)
        tmp.replace(self.out / CHECKPOINT)

    def export(self, path: str | Path) -> None:
        """The trained supernet alone, fp16, with its training config and state (step and data position), and
        its tokenizer beside it as spm.model: what the product ships and what a fresh machine continues from."""
        if self.rank != 0:
            return
        extra = {"state": dict(self.state), "train_config": self.cfg.to_dict()}
        export_supernet(path, self.model, extra, self.tokenizer.path)

    def _metric(self, record: dict) -> None:
        if self.rank != 0:
            return
        with open(self.out / METRICS, "a") as f:
            f.write(json.dumps(record) + "\n")

    def validate(self) -> dict[str, float]:
        result = {}
        watched = [("largest", self.space.largest()), ("smallest", self.space.smallest())]
        if self.cfg.arch is not None:
            watched = [("arch", self.cfg.arch)]
        for label, arch in watched:
            for name, data in self.valid.items():
                result[f"{label}/{name}"] = validation_loss(self.model, arch, data, self.bf16)
        self._metric({"step": self.state["step"], "tokens": self.state["tokens"], "valid": result})
        return result

    def epoch_buckets(self, epoch: int) -> list[list[int]]:
        if getattr(self, "_epoch_buckets", (None,))[0] != epoch:
            cfg = self.cfg
            rows = mixture_indices(self.parts, cfg.mixture, cfg.seed, epoch)
            self._epoch_buckets = (epoch, list(epoch_batches(self.train_data, cfg.max_tokens, cfg.seed, epoch, rows)))
        return self._epoch_buckets[1]

    def _save(self) -> None:
        self.checkpoint()
        if self.cfg.export:
            self.export(self.cfg.export)

    def run(self, on_progress: Callable[[dict], None] = lambda _: None, sitting_minutes: float | None = None) -> dict:
        """Train until `max_minutes` in all, `max_steps`, `sitting_minutes` of this call, or `request_stop()`."""
        cfg, st, model = self.cfg, self.state, self.model
        model.train()
        started, last_ckpt = time.time() - st["elapsed"], time.time()
        sitting_ends = time.time() + sitting_minutes * 60 if sitting_minutes is not None else math.inf
        pad, bos, eos = model.model_config.pad_id, model.model_config.bos_id, model.model_config.eos_id
        window: list[tuple[float, int]] = []
        while not self._should_stop(started, sitting_ends):
            buckets = self.epoch_buckets(st["epoch"])
            if len(buckets) < self.world_size:
                raise ConfigError(f"{len(buckets)} batches per epoch for {self.world_size} ranks: lower max_tokens")
            if st["position"] + self.world_size > len(buckets):  # the last < world_size buckets wait for next epoch
                st["epoch"], st["position"] = st["epoch"] + 1, 0
                continue
            indices = buckets[st["position"] + self.rank]
            batch = make_batch(self.train_data, indices, pad, bos, eos).to(self.device)
            ntokens = self._sum_over_ranks(batch.ntokens)  # the step's loss is the mean over all ranks' tokens
            st["position"] += self.world_size
            st["step"] += 1
            lr = lr_at(st["step"], cfg, self.rewarm_from)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            self.optimizer.zero_grad(set_to_none=True)
            archs = archs_for_step(self.space, cfg, st["step"])
            nll_sum, teacher = 0.0, None
            for arch in archs:
                model.set_active(arch)
                loss, nll, probs = loss_on(model, batch, cfg.label_smoothing, self.bf16, teacher)
                (loss / (ntokens * len(archs))).backward()
                nll_sum += nll.item() / ntokens / len(archs)
                if cfg.sampling == "sandwich" and cfg.distill and teacher is None:
                    teacher = probs  # the largest comes first; the others learn its distribution
            if self.world_size > 1:
                self._reduce_gradients()
                nll_sum = self._sum_over_ranks(nll_sum)
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_norm)
            self.optimizer.step()
            st["tokens"] += int(ntokens)
            st["elapsed"] = time.time() - started
            window = (window + [(nll_sum, ntokens)])[-50:]
            if st["step"] % 50 == 0:
                self._metric({"step": st["step"], "tokens": st["tokens"], "train_nll": nll_sum, "lr": lr})
            if st["step"] % cfg.validate_every == 0:
                st["last_valid"] = self.validate()
            if cfg.snapshot_every and st["step"] % cfg.snapshot_every == 0:
                self.export(self.out / SNAPSHOTS / f"step-{st['step']:07d}.pt")
            if time.time() - last_ckpt > cfg.checkpoint_minutes * 60:
                self._save()
                last_ckpt = time.time()
            on_progress(
                {
                    **st,
                    "loss": sum(x * n for x, n in window) / sum(n for _, n in window),
                    "epoch_fraction": st["position"] / len(buckets),
                    "limit_seconds": cfg.max_minutes * 60,
                }
            )
        st["last_valid"] = self.validate()
        self._save()
        return dict(st)
