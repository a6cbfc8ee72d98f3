"""The latency dataset: sampled SubTransformers measured on this host, one JSONL file per hardware profile.

Each file starts with a header line (the profile's fingerprint, the workload, the search space) and holds one
line per measured architecture, so a run can stop at any point and resume where it left off. Every architecture
is exported once and measured under every requested thread count, one model at a time.

By default each architecture is timed run by run beside a fixed reference architecture (the space's smallest,
loaded once per target; `latency.time_paired`): a slow spell of a shared machine slows both, and the predictor
learns the ratio times the reference's median over the dataset (`dataset_archs`), not milliseconds that a spell
multiplied by ten.
"""

import json
import logging
import random
import statistics
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from hat_engine.config import ArchConfig, SearchSpace
from hat_engine.errors import DataError, check_latencies
from hat_engine.hardware import detect
from hat_engine.latency.timing import REFERENCE_WORKLOAD, Workload, measure, measure_paired
from hat_engine.model.supernet import SuperTransformer
from hat_engine.runtime.runners import load_runner

log = logging.getLogger(__name__)

DATASET_FORMAT = "hat-latency-dataset/1"
SAMPLE_SEED_STRIDE = 1_000_003


@dataclass(frozen=True)
class Target:
    """Where an arch is timed: a runtime and a thread count (together with the host: a hardware profile)."""

    backend: str  # "onnxruntime" or "torch"
    threads: int


def sample_arch(space: SearchSpace, seed: int, index: int) -> ArchConfig:
    """The index-th architecture of a dataset: the largest and smallest first, then uniform samples."""
    if index == 0:
        return space.largest()
    if index == 1:
        return space.smallest()
    return space.sample(random.Random(seed * SAMPLE_SEED_STRIDE + index))


@dataclass(frozen=True)
class LatencyRow:
    """One measured arch of a dataset file: its statistics as measured (p50, p95, ...; `LatencyStats`), and,
    where it was timed beside the reference arch, the ratio of the two p50s and the reference's own p50."""

    index: int
    arch: ArchConfig
    stats: dict[str, Any]
    ratio: float | None = None
    reference_p50: float | None = None
    rechecked: bool = False

    @property
    def p50(self) -> Any:
        return self.stats.get("p50")

    def to_dict(self) -> dict[str, Any]:
        d = {"index": self.index, "arch_id": self.arch.arch_id(), "arch": self.arch.to_dict(), **self.stats}
        if self.ratio is not None:
            d.update(reference_p50=self.reference_p50, ratio=self.ratio)
        if self.rechecked:
            d["rechecked"] = True
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "LatencyRow":
        named = {"index", "arch_id", "arch", "ratio", "reference_p50", "rechecked"}
        try:
            return cls(int(d.get("index", -1)), ArchConfig.from_dict(d["arch"]),
                       {k: v for k, v in d.items() if k not in named}, d.get("ratio"), d.get("reference_p50"),
                       bool(d.get("rechecked", False)))  # fmt: skip
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"a latency dataset row is malformed ({exc}): {str(d)[:120]}") from exc


def read_dataset(path: Path) -> tuple[dict, list[LatencyRow]]:
    """(header, rows) of a dataset file."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as exc:
        raise DataError(f"cannot read latency dataset {path}: {exc}") from exc
    if not lines:
        raise DataError(f"{path} is empty; run `hat latency measure` first")
    header = json.loads(lines[0])
    if header.get("format") != DATASET_FORMAT:
        raise DataError(f"{path} is not a latency dataset ({DATASET_FORMAT})")
    return header, [LatencyRow.from_dict(json.loads(line)) for line in lines[1:] if line.strip()]


def dataset_archs(rows: list[LatencyRow]) -> tuple[list[ArchConfig], list[float]]:
    """The rows' archs and the milliseconds a predictor learns: where every row was timed beside the reference
    arch, its ratio times the reference's median p50 over the rows; otherwise the p50. LatencyError for no rows
    or a figure that is not a positive number."""
    ms = [r.p50 for r in rows]
    check_latencies(ms, "latency dataset p50")
    if all(r.ratio is not None for r in rows):
        ratios, reference = [r.ratio for r in rows], [r.reference_p50 for r in rows]
        check_latencies(ratios, "latency dataset ratio")
        check_latencies(reference, "latency dataset reference_p50")
        typical = statistics.median(reference)
        ms = [ratio * typical for ratio in ratios]
    return [r.arch for r in rows], ms


class DatasetWriter:
    """One file per target, resumable: indices already in every file are skipped."""

    def __init__(self, out_dir: Path, targets: list[Target], space: SearchSpace, workload: Workload, seed: int,
                 reference: ArchConfig | None = None):  # fmt: skip
        self.out_dir, self.targets, self.reference = Path(out_dir), targets, reference
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.paths: dict[Target, Path] = {}
        self.done: dict[Target, set[int]] = {}
        for target in targets:
            profile = detect(target.backend, target.threads).to_dict()
            path = self.out_dir / f"{profile['profile_id']}.jsonl"
            header = {"format": DATASET_FORMAT, "profile": profile, "workload": workload.to_dict(),
                      "space": space.to_dict(), "seed": seed,
                      "reference_arch": reference.to_dict() if reference else None}  # fmt: skip
            if path.is_file():
                old, rows = read_dataset(path)
                timed = Workload.from_dict(old["workload"])
                if (old["space"], timed, old["seed"]) != (header["space"], workload, seed):
                    raise DataError(f"{path} was measured with another space, workload or seed (its workload: {timed};"
                                    f" this run's: {workload}); use another --out")  # fmt: skip
                if old.get("reference_arch") != header["reference_arch"]:
                    raise DataError(
                        f"{path} was measured {'with' if old.get('reference_arch') else 'without'} a "
                        "reference arch beside each one; resume it the same way or use another --out"
                    )
                self.done[target] = {r.index for r in rows}
            else:
                path.write_text(json.dumps(header) + "\n")
                self.done[target] = set()
            self.paths[target] = path

    def pending(self, indices: range) -> Iterator[int]:
        for i in indices:
            if any(i not in self.done[t] for t in self.targets):
                yield i

    def append(self, target: Target, row: LatencyRow) -> None:
        with open(self.paths[target], "a") as f:
            f.write(json.dumps(row.to_dict()) + "\n")
        self.done[target].add(row.index)


def measure_arch(
    supernet: SuperTransformer, arch: ArchConfig, targets: list[Target], export: Callable, workload: Workload,
    runs: int, warmup: int, references: dict[Target, object] | None = None,
) -> dict[Target, dict]:  # fmt: skip
    """Extract once, export once (ONNX targets), then time under every target in turn; beside that target's
    reference runner (`reference_runners`) when given, adding `reference_p50` and `ratio` to its stats."""
    with _extracted(supernet, arch, targets, export) as (model, folder):
        return _time_targets(model, folder, targets, workload, runs, warmup, references)


@contextmanager
def _extracted(supernet: SuperTransformer, arch: ArchConfig, targets: list[Target],
               export: Callable) -> Iterator[tuple[object, Path]]:  # fmt: skip
    """`arch` extracted, and exported into a temporary folder when any target runs ONNX Runtime."""
    model = supernet.extract(arch).eval()
    with tempfile.TemporaryDirectory(prefix="hat-latency-") as tmp:
        if any(t.backend == "onnxruntime" for t in targets):
            export(model, Path(tmp))
        yield model, Path(tmp)


def _time_targets(model, folder: Path, targets, workload, runs, warmup, references) -> dict[Target, dict]:
    results: dict[Target, dict] = {}
    threads_before = torch.get_num_threads()
    for target in targets:
        runner = _runner(model, folder, target)
        if references is None:
            results[target] = measure(runner, workload, warmup, runs).to_dict()
        else:
            paired = measure_paired(runner, references[target], workload, warmup, runs)
            results[target] = {**paired.arch.to_dict(), "reference_p50": round(paired.reference.p50, 3),
                               "ratio": round(paired.ratio, 5)}  # fmt: skip
        del runner
    torch.set_num_threads(threads_before)
    return results


def _runner(model, folder: Path, target: Target):
    return load_runner(folder, "onnx" if target.backend == "onnxruntime" else "torch", target.threads, model)


@contextmanager
def reference_runners(supernet: SuperTransformer, arch: ArchConfig | None, targets: list[Target],
                      export: Callable) -> Iterator[dict[Target, object] | None]:  # fmt: skip
    """A runner of `arch` per target, loaded once for a whole dataset; None when there is no reference arch."""
    if arch is None:
        yield None
        return
    with _extracted(supernet, arch, targets, export) as (model, folder):
        yield {t: _runner(model, folder, t) for t in targets}


def build_dataset(
    supernet: SuperTransformer, targets: list[Target], out_dir: Path, samples: int, export: Callable,
    seed: int = 1, runs: int = 20, warmup: int = 3, workload: Workload = REFERENCE_WORKLOAD,
    on_arch: Callable[[int, ArchConfig, dict], None] = lambda *_: None, paired: bool = True,
) -> dict[Target, Path]:  # fmt: skip
    """Measure `samples` architectures (resuming a previous run) and return the file of each target; `paired`:
    each beside the space's smallest arch (the module's docstring)."""
    reference = supernet.space.smallest() if paired else None
    writer = DatasetWriter(out_dir, targets, supernet.space, workload, seed, reference)
    pending = list(writer.pending(range(samples)))
    if not pending:
        return writer.paths
    with reference_runners(supernet, reference, targets, export) as references:
        for index in pending:
            arch = sample_arch(supernet.space, seed, index)
            results = measure_arch(supernet, arch, targets, export, workload, runs, warmup, references)
            for target, stats in results.items():
                if index not in writer.done[target]:
                    writer.append(target, _row(index, arch, stats))
            on_arch(index, arch, {f"{t.backend}-{t.threads}t": s["p50"] for t, s in results.items()})
    return writer.paths


def _row(index: int, arch: ArchConfig, measured: dict, rechecked: bool = False) -> LatencyRow:
    """A row from `measure_arch`'s result for one target (its stats, with ratio and reference_p50 if paired)."""
    stats = {k: v for k, v in measured.items() if k not in ("ratio", "reference_p50")}
    return LatencyRow(index, arch, stats, measured.get("ratio"), measured.get("reference_p50"), rechecked)


def suspect_rows(space: SearchSpace, rows: list[LatencyRow], threshold: float, folds: int = 5) -> set[int]:
    """Indices of rows measured far (> threshold, relative) above or below what the other rows predict for
    them: out-of-fold predictions of the per-layer MLP. On a shared machine these are mostly runs disturbed by
    other work; `recheck_dataset` measures them again."""
    from hat_engine.latency.predictor import fit

    archs, ms = dataset_archs(rows)
    order = list(range(len(rows)))
    random.Random(0).shuffle(order)
    suspects = set()
    for k in range(folds):
        held = set(order[k::folds])
        train = [i for i in range(len(rows)) if i not in held]
        predictor = fit(space, [archs[i] for i in train], [ms[i] for i in train], "per_layer", epochs=1500)
        held_sorted = sorted(held)
        for i, predicted in zip(held_sorted, predictor.predict([archs[i] for i in held_sorted]), strict=True):
            if abs(predicted - ms[i]) / ms[i] > threshold:
                suspects.add(rows[i].index)
    return suspects


def recheck_dataset(
    supernet: SuperTransformer, targets: list[Target], out_dir: Path, export: Callable, threshold: float = 0.2,
    runs: int = 20, warmup: int = 3, on_arch: Callable[[int, int], None] = lambda *_: None,
) -> dict[str, int]:  # fmt: skip
    """Measure again, under every target, each architecture that any target's file holds as a suspect
    (`suspect_rows`) and has not rechecked yet; the new measurement replaces the old one in place, marked
    `"rechecked": true`, as soon as it is taken (an interrupted recheck keeps what it did and resumes). Returns
    how many rows each file had suspected."""
    header = _header_of(out_dir, targets)
    seed, reference = int(header["seed"]), header.get("reference_arch")
    reference = ArchConfig.from_dict(reference) if reference else None
    writer = DatasetWriter(out_dir, targets, supernet.space, REFERENCE_WORKLOAD, seed, reference)
    suspects: set[int] = set()
    counts = {}
    for path in writer.paths.values():
        _, rows = read_dataset(path)
        found = suspect_rows(supernet.space, rows, threshold) - {r.index for r in rows if r.rechecked}
        counts[path.name] = len(found)
        suspects |= found
    with reference_runners(supernet, reference if suspects else None, targets, export) as references:
        for n, index in enumerate(sorted(suspects)):
            arch = sample_arch(supernet.space, seed, index)
            measured = measure_arch(supernet, arch, targets, export, REFERENCE_WORKLOAD, runs, warmup, references)
            for target, stats in measured.items():
                _replace_row(writer.paths[target], _row(index, arch, stats, rechecked=True))
            on_arch(n + 1, len(suspects))
    counts["rechecked_archs"] = len(suspects)
    return counts


def _replace_row(path: Path, new: LatencyRow) -> None:
    """Rewrite `path` with the row of `new.index` replaced, atomically."""
    lines = path.read_text().splitlines()
    out = [lines[0]] + [
        json.dumps(new.to_dict()) if json.loads(line)["index"] == new.index else line
        for line in lines[1:] if line.strip()
    ]  # fmt: skip
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(out) + "\n")
    tmp.replace(path)


def _header_of(out_dir: Path, targets: list[Target]) -> dict:
    for target in targets:
        path = Path(out_dir) / f"{detect(target.backend, target.threads).profile_id}.jsonl"
        if path.is_file():
            return read_dataset(path)[0]
    raise DataError(f"{out_dir} holds no dataset for {targets}; run `hat latency measure` first")
