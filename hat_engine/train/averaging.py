"""Weight averaging of one run's saved supernets (Vaswani et al. 2017 average the last checkpoints; fairseq's
`average_checkpoints`): the mean of each weight over snapshots written `snapshot_every` steps apart, which smooths
the noise of the last updates at no training cost."""

from pathlib import Path
from typing import Any

from hat_engine.data.tokenizer import tokenizer_beside
from hat_engine.errors import CheckpointError
from hat_engine.model.supernet import SuperTransformer, load_supernet


def average_supernets(paths: list[Path]) -> tuple[SuperTransformer, dict[str, Any]]:
    """The supernet whose every weight is the mean over `paths` (accumulated in fp32), and the `extra` of the
    latest of them (by step, so a run continues from its data position) with `averaged_steps` added. The inputs
    must share their space, model config and tokenizer: weights of different runs do not average."""
    if not paths:
        raise CheckpointError("nothing to average: pass at least one saved supernet")
    first, first_extra = load_supernet(paths[0])
    tokenizer = tokenizer_beside(paths[0])
    sums = {k: v.detach().clone().float() for k, v in first.state_dict().items() if v.is_floating_point()}
    extras = [first_extra]
    for path in paths[1:]:
        model, extra = load_supernet(path)
        if model.space != first.space or model.model_config != first.model_config:
            raise CheckpointError(f"{path} has another space or model config than {paths[0]}: not one run's weights")
        beside = tokenizer_beside(path)
        if (beside is None) != (tokenizer is None) or (beside and beside.read_bytes() != tokenizer.read_bytes()):
            raise CheckpointError(f"{path} was trained with another tokenizer than {paths[0]}")
        for k, v in model.state_dict().items():
            if k in sums:
                sums[k] += v.float()
        extras.append(extra)
    first.load_state_dict({k: v / len(paths) for k, v in sums.items()}, strict=False)
    steps = [int(e.get("state", {}).get("step", -1)) for e in extras]
    latest = dict(extras[max(range(len(paths)), key=lambda i: steps[i])])
    latest["averaged_steps"] = sorted(steps)
    return first, latest
