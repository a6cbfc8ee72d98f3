"""Tokenised parallel data and token-bucketed batches (fairseq-style: similar lengths, a token budget)."""

import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from hat_engine.data import load_manifest
from hat_engine.data.tokenizer import Tokenizer
from hat_engine.errors import ConfigError, DataError


@dataclass
class ParallelData:
    """Token ids without specials; `Batch` adds BOS/EOS."""

    src: list[list[int]]
    tgt: list[list[int]]

    def __len__(self) -> int:
        return len(self.src)

    def target_tokens(self) -> int:
        return sum(len(t) + 1 for t in self.tgt)


@dataclass
class Batch:
    src: Tensor  # (B, S) source ids + EOS, right-padded
    prev: Tensor  # (B, T) BOS + target ids
    target: Tensor  # (B, T) target ids + EOS
    ntokens: int  # non-pad target tokens

    def to(self, device: torch.device | str) -> "Batch":
        return Batch(self.src.to(device), self.prev.to(device), self.target.to(device), self.ntokens)


def read_references(data_dir: Path, name: str) -> tuple[list[str], list[list[str]]]:
    """The English lines of a split named in the manifest and its German reference streams (`de`, then `de2`
    where the split has a second reference): the one reader of a built corpus' split files."""
    manifest = load_manifest(data_dir)
    if name not in manifest["splits"]:
        raise DataError(f"{data_dir}: no split {name!r}; the manifest has {sorted(manifest['splits'])}")
    files = manifest["splits"][name]["files"]

    def lines(key: str) -> list[str]:
        return (data_dir / files[key]["path"]).read_text(encoding="utf-8").splitlines()

    return lines("en"), [lines(key) for key in ("de", "de2") if key in files]


def read_split(data_dir: Path, name: str) -> tuple[list[str], list[str]]:
    """The English and (first reference) German lines of a split named in the manifest."""
    src, refs = read_references(data_dir, name)
    return src, refs[0]


def splits_with_role(data_dir: Path, role: str) -> list[str]:
    return [name for name, s in load_manifest(data_dir)["splits"].items() if s["role"] == role]


def mixture_splits(data_dir: Path, mixture: dict[str, float]) -> list[str]:
    """The corpus' train splits, after checking that the mixture names only those."""
    names = splits_with_role(data_dir, "train")
    unknown = sorted(set(mixture) - set(names))
    if unknown:
        raise ConfigError(f"mixture names {unknown}, not train splits of {data_dir}: {names}")
    return names


def tokenize(tokenizer: Tokenizer, src: list[str], tgt: list[str]) -> ParallelData:
    return ParallelData(tokenizer.encode(src), tokenizer.encode(tgt))


def concat(parts: list[ParallelData]) -> ParallelData:
    return ParallelData([s for p in parts for s in p.src], [t for p in parts for t in p.tgt])


def make_batch(data: ParallelData, indices: list[int], pad: int, bos: int, eos: int) -> Batch:
    srcs = [data.src[i] + [eos] for i in indices]
    tgts = [data.tgt[i] for i in indices]
    s_len, t_len = max(map(len, srcs)), max(len(t) for t in tgts) + 1
    src = torch.full((len(indices), s_len), pad, dtype=torch.long)
    prev = torch.full((len(indices), t_len), pad, dtype=torch.long)
    target = torch.full((len(indices), t_len), pad, dtype=torch.long)
    for row, (s, t) in enumerate(zip(srcs, tgts, strict=True)):
        src[row, : len(s)] = torch.tensor(s)
        prev[row, : len(t) + 1] = torch.tensor([bos] + t)
        target[row, : len(t) + 1] = torch.tensor(t + [eos])
    return Batch(src, prev, target, sum(len(t) + 1 for t in tgts))


def mixture_indices(parts: list[tuple[str, int]], weights: dict[str, float], seed: int, epoch: int) -> list[int]:
    """The rows of one epoch of a mixture of concatenated splits (`parts`: name and size, in order).

    A split of weight w contributes floor(w) copies of every pair plus a seeded sample, drawn afresh each epoch,
    of frac(w) of its pairs: 0.25 trains on a different quarter each epoch, 4 repeats every pair four times,
    0 leaves the split out. Splits not named weigh 1."""
    rng, rows, offset = random.Random(seed * 7_919 + epoch), [], 0
    for name, size in parts:
        weight = weights.get(name, 1.0)
        whole, fraction = int(weight), weight - int(weight)
        block = range(offset, offset + size)
        rows.extend(i for _ in range(whole) for i in block)
        rows.extend(rng.sample(block, round(fraction * size)))
        offset += size
    return rows


def token_buckets(data: ParallelData, max_tokens: int, seed: int, rows: list[int] | None = None) -> list[list[int]]:
    """Index lists of similar-length pairs whose padded size (rows x longest side) stays within `max_tokens`.
    `rows` (default: every pair once) may repeat a pair."""
    rng = random.Random(seed)
    lengths = [max(len(s) + 1, len(t) + 1) for s, t in zip(data.src, data.tgt, strict=True)]
    rows = range(len(data)) if rows is None else rows
    order = sorted(rows, key=lambda i: (lengths[i], rng.random()))
    buckets, current, longest = [], [], 0
    for i in order:
        longest_next = max(longest, lengths[i])
        if current and longest_next * (len(current) + 1) > max_tokens:
            buckets.append(current)
            current, longest_next = [], lengths[i]
        current.append(i)
        longest = longest_next
    if current:
        buckets.append(current)
    return buckets


def epoch_batches(
    data: ParallelData, max_tokens: int, seed: int, epoch: int, rows: list[int] | None = None
) -> Iterator[list[int]]:
    """The buckets of one epoch (of `rows`, default every pair once) in a seeded random order."""
    buckets = token_buckets(data, max_tokens, seed + epoch, rows)
    random.Random(seed * 1000 + epoch).shuffle(buckets)
    yield from buckets


def mixture_sentences(data_dir: Path, mixture: dict[str, float], seed: int) -> list[str]:
    """English and German sides of the first epoch of a training mixture (`mixture_indices`), in corpus order:
    the text a tokenizer for that mixture is trained on."""
    names = mixture_splits(data_dir, mixture)
    sides = [read_split(data_dir, name) for name in names]
    src = [line for en, _ in sides for line in en]
    tgt = [line for _, de in sides for line in de]
    rows = sorted(mixture_indices([(n, len(en)) for n, (en, _) in zip(names, sides, strict=True)], mixture, seed, 0))
    return [text for i in rows for text in (src[i], tgt[i])]
