"""A tiny copy-task corpus (source == target) and search space for training tests, unit and distributed."""

import random
from pathlib import Path

from hat_engine.data import BuildOptions, build_corpus

WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda omicron".split()
TINY_SPACE_YAML = (
    "embed_dims: [16, 32]\nffn_dims: [32, 64]\nheads: [2, 4]\nencoder_depths: [1, 2]\n"
    "decoder_depths: [1, 2]\ncross_layers: [1, 2]\nqkv_dim: 32\n"
)


def make_copy_task(folder: Path) -> Path:
    """Write `data/` (a built corpus of random word sequences copied to the target side) and `space.yaml`."""
    rng = random.Random(0)
    files = {}
    for role, n in (("train", 400), ("valid", 40), ("test", 40)):
        lines = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 6))) + f" {role}{i}." for i in range(n)]
        (folder / f"{role}.txt").write_text("\n".join(lines))
        files[f"{role}-src"] = files[f"{role}-tgt"] = folder / f"{role}.txt"
    build_corpus(BuildOptions(out=folder / "data", custom=files, vocab_size=80))
    (folder / "space.yaml").write_text(TINY_SPACE_YAML)
    return folder
