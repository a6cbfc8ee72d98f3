"""The evolutionary search's fitness (HAT Sec. 3.4): validation loss of a SubTransformer with inherited weights.

Every architecture is scored on one fixed validation subset, so scores are comparable across generations and
budgets; `hat_engine.search.evolution.FitnessCache` keeps each score. Lower is better (per-token NLL).

The score is `train.loss.validation_loss`, the loss training watches, on the subset's batches built once
(the search scores thousands of archs on them).
"""

import hashlib
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from hat_engine.config import ArchConfig
from hat_engine.data.batching import ParallelData, concat, read_split, splits_with_role, tokenize
from hat_engine.data.tokenizer import Tokenizer
from hat_engine.errors import ConfigError, DataError
from hat_engine.model.supernet import SuperTransformer
from hat_engine.train.loss import validation_batches, validation_loss

log = logging.getLogger(__name__)


class ValidationFitness:
    """`fitness(archs)` -> per-token validation NLL of each SubTransformer, weights inherited from `supernet`.

    Keeps the time spent (`seconds`) and the number of architectures scored (`evaluations`) to report the
    search cost."""

    def __init__(self, supernet: SuperTransformer, valid: ParallelData, max_tokens: int = 4096, bf16: bool = False):
        if len(valid) == 0:
            raise DataError("the validation subset is empty; pass more --valid-sentences or check the corpus")
        self.supernet, self.valid, self.max_tokens, self.bf16 = supernet.eval(), valid, max_tokens, bf16
        cfg = supernet.model_config
        self.batches = validation_batches(valid, max_tokens, cfg.pad_id, cfg.bos_id, cfg.eos_id)
        self.tokens = sum(batch.ntokens for batch in self.batches)
        self.seconds, self.evaluations = 0.0, 0

    def __call__(self, archs: Sequence[ArchConfig]) -> list[float]:
        started = time.perf_counter()
        self.supernet.eval()  # no dropout: the score of an arch must not depend on when it is computed
        with torch.inference_mode():
            losses = [self._loss(arch) for arch in archs]
        self.seconds += time.perf_counter() - started
        self.evaluations += len(archs)
        return losses

    def _loss(self, arch: ArchConfig) -> float:
        return validation_loss(self.supernet, arch, self.batches, self.bf16)

    @property
    def seconds_per_evaluation(self) -> float:
        return self.seconds / max(self.evaluations, 1)

    def key(self, supernet_sha256: str) -> dict:
        """What a cached score depends on: the weights, the exact validation tokens, the numerics."""
        digest = hashlib.sha256()
        for src, tgt in zip(self.valid.src, self.valid.tgt, strict=True):
            digest.update(json.dumps([src, tgt]).encode())
        return {"supernet_sha256": supernet_sha256, "valid_sha256": digest.hexdigest(),
                "max_tokens": self.max_tokens, "bf16": self.bf16}  # fmt: skip


def load_scores(path: Path, key: dict) -> dict[str, float]:
    """Scores saved by `save_scores` under the same key; an absent file or another key gives none (logged)."""
    path = Path(path)
    if not path.is_file():
        return {}
    try:
        saved = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not a fitness cache ({exc}); delete it or pass another --fitness-cache") from exc
    if not isinstance(saved, dict) or saved.get("key") != key:
        log.warning("%s was scored with another supernet or validation subset; starting afresh", path)
        return {}
    return {str(k): float(v) for k, v in saved.get("scores", {}).items()}


def save_scores(path: Path, key: dict, scores: dict[str, float]) -> None:
    """Write atomically: a search interrupted mid-write leaves the previous file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"key": key, "scores": scores}, sort_keys=True) + "\n")
    tmp.replace(path)


def validation_subset(data_dir: str | Path, tokenizer: Tokenizer, sentences: int) -> ParallelData:
    """The first `sentences` pairs of every valid split, tokenised and sorted by length (tight batches).

    Fixed and deterministic: the same corpus always gives the same subset, so fitness values can be cached."""
    if sentences < 1:
        raise ConfigError(f"valid sentences={sentences} must be >= 1")
    data_dir = Path(data_dir)
    names = splits_with_role(data_dir, "valid")
    if not names:
        raise DataError(f"{data_dir}: the manifest lists no valid split; run `hat data build`")
    parts = []
    for name in names:
        src, tgt = read_split(data_dir, name)
        parts.append(tokenize(tokenizer, src[:sentences], tgt[:sentences]))
    data = concat(parts)
    order = sorted(range(len(data)), key=lambda i: (max(len(data.src[i]), len(data.tgt[i])), i))
    return ParallelData([data.src[i] for i in order], [data.tgt[i] for i in order])
