"""Shared by the jobs that pick a SubTransformer out of a trained supernet: `--supernet CKPT --arch SPEC`."""

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from hat_engine.config import ArchConfig, SearchSpace
from hat_engine.errors import ConfigError

if TYPE_CHECKING:
    from hat_engine.data.tokenizer import Tokenizer
    from hat_engine.model.supernet import SuperTransformer


def add_supernet_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--supernet", type=Path, required=True, help="a trained supernet (catalog/supernet.pt)")
    p.add_argument("--tokenizer", type=Path, help="SentencePiece model (default: spm.model beside the supernet)")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")


def _named_depth(spec: str) -> int | None:
    """The decoder depth of `largest-decN`, else None."""
    tail = spec[len("largest-dec") :]
    return int(tail) if spec.startswith("largest-dec") and tail.isdigit() else None


def spec_label(spec: str) -> str:
    """What an `--arch` spec is called in outputs: a named spec itself, an arch YAML its file name without the
    folder and suffix (so that DIR/LABEL.SET.de stays in DIR)."""
    return spec if spec in ("largest", "smallest") or _named_depth(spec) is not None else Path(spec).stem


def arch_from_spec(space: SearchSpace, spec: str) -> ArchConfig:
    """`largest`, `largest-decN` (the largest with N decoder layers), `smallest`, or a path to an arch YAML."""
    if spec == "largest":
        return space.largest()
    if (depth := _named_depth(spec)) is not None:
        return space.largest(decoder_depth=depth)
    if spec == "smallest":
        return space.smallest()
    path = Path(spec)
    if not path.is_file():
        raise ConfigError(
            f"--arch {spec!r}: use 'largest', 'largest-decN' (N decoder layers), 'smallest' or an arch YAML file"
        )
    arch = ArchConfig.from_yaml(path.read_text())
    space.validate(arch)
    return arch


def load(args: argparse.Namespace) -> tuple["SuperTransformer", "Tokenizer"]:
    from hat_engine.model.supernet import load_supernet_with_tokenizer

    return load_supernet_with_tokenizer(args.supernet, args.tokenizer)
