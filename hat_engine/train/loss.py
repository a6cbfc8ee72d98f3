"""The one loss of a SubTransformer on a batch, for training (label smoothing, in-place distillation) and for
validation: `validation_loss` is what training watches and what the search's fitness scores."""

import torch
import torch.nn.functional as F

from hat_engine.config import ArchConfig
from hat_engine.data.batching import Batch, ParallelData, make_batch, token_buckets
from hat_engine.model.supernet import SuperTransformer


def loss_on(
    model: torch.nn.Module, batch, label_smoothing: float, bf16: bool, teacher: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(training loss, plain NLL, detached probabilities (N, V)), the sums over the N non-pad target tokens.

    The loss is label-smoothed cross entropy, or, given `teacher` probabilities over the same tokens (in-place
    distillation), the cross entropy against them. One log-softmax over the real (non-pad) positions serves
    every term: over an 8k vocabulary it is a large share of a step, and padding is a fifth of a batch."""
    with torch.autocast(batch.src.device.type, dtype=torch.bfloat16, enabled=bf16):
        logits = model(batch.src, batch.prev)  # (B, T, V)
    target = batch.target.flatten()
    keep = target.ne(model.model_config.pad_id)
    lprobs = F.log_softmax(logits.flatten(0, 1)[keep].float(), dim=-1)  # (N, V), N real target tokens
    nll = -lprobs.gather(1, target[keep][:, None]).squeeze(1)  # (N,)
    if teacher is None:
        loss = (1.0 - label_smoothing) * nll + label_smoothing * -lprobs.mean(dim=-1)  # as F.cross_entropy's
    else:
        loss = -(teacher * lprobs).sum(dim=-1)
    return loss.sum(), nll.detach().sum(), lprobs.detach().exp()


def validation_batches(valid: ParallelData, max_tokens: int, pad: int, bos: int, eos: int) -> list[Batch]:
    """The fixed batches (seed 0) a validation set is scored in; build them once and score many archs."""
    return [make_batch(valid, indices, pad, bos, eos) for indices in token_buckets(valid, max_tokens, seed=0)]


@torch.inference_mode()
def validation_loss(model: SuperTransformer, arch: ArchConfig, batches: list[Batch], bf16: bool) -> float:
    """Per-token NLL of one SubTransformer (inherited weights, no dropout) on fixed validation batches."""
    was_training = model.training
    model.eval()
    model.set_active(arch)
    device = next(model.parameters()).device
    total, tokens = 0.0, 0
    for batch in batches:
        batch = batch.to(device)
        total += loss_on(model, batch, 0.0, bf16)[1].item()
        tokens += batch.ntokens
    model.train(was_training)
    return total / max(tokens, 1)
