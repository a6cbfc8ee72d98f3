"""Latency on real hardware (HAT §3.3): the reference workload, timed on the artifact that would be served.

The reference workload (CONTRACT §3) is batch 1, 30 source tokens, 30 decoder steps, beam 4: beam search with
EOS banned until the last step, so every run decodes exactly the same number of steps whatever the weights, and
with the repeat ban the served text path decodes with (`NO_REPEAT_NGRAM`), so that what is timed is what is
served (the ban costs 2-6 %: `bench/repeat_ban.py`). A workload recorded before the ban was part of it (a
dataset's header, a catalog's `reference_workload` without `no_repeat_ngram`) was decoded without it, and reads
back so.
Timing: warm-up runs, then >= 20 timed runs, one model at a time, threads set explicitly by the caller's runner.
Models compared with each other (a catalog's entries) are timed in alternation (`measure_interleaved`), so a slow
spell of a shared machine lands on all of them rather than on whichever was being timed.
"""

import random
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from hat_engine.config import ModelConfig
from hat_engine.errors import LatencyError, check_latencies
from hat_engine.model.decoding import beam_search, greedy_search
from hat_engine.model.translate import NO_REPEAT_NGRAM

FIRST_TOKEN_ID = 4  # ids below are pad/unk/bos/eos


@dataclass(frozen=True)
class Workload:
    batch_size: int = 1
    source_tokens: int = 30
    target_tokens: int = 30
    beam: int = 4
    no_repeat_ngram: int = NO_REPEAT_NGRAM  # the repeat ban, as served; 0: off

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Workload":
        """A recorded workload; one recorded without `no_repeat_ngram` was timed before the ban existed: 0."""
        return cls(**{"no_repeat_ngram": 0, **d})


REFERENCE_WORKLOAD = Workload()


@dataclass(frozen=True)
class LatencyStats:
    """Milliseconds over the timed runs."""

    p50: float
    p95: float
    mean: float
    trimmed_mean: float  # mean of the runs between the 10th and 90th percentiles
    runs: int

    def to_dict(self) -> dict:
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(self).items()}


def reference_source(workload: Workload, model_config: ModelConfig, seed: int = 0) -> np.ndarray:
    """(batch, source_tokens) int64 ids: random non-special tokens ending in EOS."""
    shape = (workload.batch_size, workload.source_tokens - 1)
    body = np.random.default_rng(seed).integers(FIRST_TOKEN_ID, model_config.vocab_size, shape, dtype=np.int64)
    return np.concatenate([body, np.full((workload.batch_size, 1), model_config.eos_id, dtype=np.int64)], axis=1)


def run_workload(model, src: np.ndarray, workload: Workload) -> list[list[int]]:
    """One decode of exactly `target_tokens` steps (the last one EOS) on a torch `Transformer` or an
    `OrtTranslator` (both offer the interface `hat_engine.model.decoding` drives), with the workload's repeat ban."""
    steps, ban = workload.target_tokens - 1, workload.no_repeat_ngram
    if workload.beam == 1:
        return greedy_search(model, src, max_len_a=0.0, max_len_b=steps, min_len=steps, no_repeat_ngram=ban)
    return beam_search(model, src, beam=workload.beam, max_len_a=0.0, max_len_b=steps, min_len=steps,
                       no_repeat_ngram=ban)  # fmt: skip


def stats(samples_ms: list[float]) -> LatencyStats:
    """p50, p95, mean and trimmed mean of timed runs; LatencyError for no runs or a non-positive/NaN one."""
    check_latencies(samples_ms, "latency stats")
    ordered = sorted(samples_ms)
    n = len(ordered)
    lo, hi = int(n * 0.1), max(int(n * 0.9), int(n * 0.1) + 1)
    return LatencyStats(
        p50=statistics.median(ordered),
        p95=ordered[min(n - 1, round(0.95 * (n - 1)))],
        mean=statistics.fmean(ordered),
        trimmed_mean=statistics.fmean(ordered[lo:hi]),
        runs=n,
    )


def _cpu_samples(fn: Callable[[], object], warmup: int, runs: int) -> list[float]:
    """Wall-clock milliseconds of `runs` calls of `fn()` (perf_counter), after `warmup` untimed calls."""
    if runs < 1 or warmup < 0:
        raise LatencyError(f"runs={runs} must be >= 1 and warmup={warmup} >= 0")
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000.0)
    return samples


def time_cpu(fn: Callable[[], object], warmup: int = 3, runs: int = 20) -> LatencyStats:
    """Wall-clock milliseconds of `fn()` on the CPU (perf_counter), after `warmup` untimed calls."""
    return stats(_cpu_samples(fn, warmup, runs))


def measure_samples(model, workload: Workload = REFERENCE_WORKLOAD, warmup: int = 3, runs: int = 20) -> list[float]:
    """Milliseconds of `runs` decodes of the reference workload on `model` (torch `Transformer` or
    `OrtTranslator`) on the CPU, after `warmup` untimed ones: samples to pool across rounds. The caller sets the
    threads: `torch.set_num_threads` for torch, the session options for ONNX Runtime."""
    src = reference_source(workload, model.model_config)
    return _cpu_samples(lambda: run_workload(model, src, workload), warmup, runs)


def measure(model, workload: Workload = REFERENCE_WORKLOAD, warmup: int = 3, runs: int = 20) -> LatencyStats:
    """Latency of the reference workload on `model`: the stats of `measure_samples`."""
    return stats(measure_samples(model, workload, warmup, runs))


@dataclass(frozen=True)
class PairedStats:
    """An arch timed run by run beside a fixed reference arch. A slow spell of a shared machine (seen here: 10x
    for tens of seconds) slows both alike, so their ratio holds where the milliseconds do not."""

    arch: LatencyStats
    reference: LatencyStats
    ratio: float  # median over runs of arch_ms / reference_ms, each pair timed back to back


def time_paired(fn: Callable[[], object], reference_fn: Callable[[], object], warmup: int = 3,
                runs: int = 20) -> PairedStats:  # fmt: skip
    """`fn()` and `reference_fn()` timed alternately, one call each per run, after `warmup` calls of each."""
    if runs < 1 or warmup < 0:
        raise LatencyError(f"runs={runs} must be >= 1 and warmup={warmup} >= 0")
    for _ in range(warmup):
        reference_fn()
        fn()
    arch, reference = [], []
    for _ in range(runs):
        reference += _cpu_samples(reference_fn, 0, 1)
        arch += _cpu_samples(fn, 0, 1)
    check_latencies(reference, "time_paired: reference timings")
    ratio = statistics.median(a / r for a, r in zip(arch, reference, strict=True))
    return PairedStats(stats(arch), stats(reference), ratio)


def measure_paired(model, reference, workload: Workload = REFERENCE_WORKLOAD, warmup: int = 3,
                   runs: int = 20) -> PairedStats:  # fmt: skip
    """`measure` of `model` with `reference` (another runner of the same kind) timed beside it (`time_paired`)."""
    src = reference_source(workload, model.model_config)
    ref_src = reference_source(workload, reference.model_config)
    return time_paired(lambda: run_workload(model, src, workload),
                       lambda: run_workload(reference, ref_src, workload), warmup, runs)  # fmt: skip


def measure_interleaved(
    loaders: dict[str, Callable[[], object]], workload: Workload = REFERENCE_WORKLOAD, rounds: int = 5,
    runs: int = 6, warmup: int = 2, seed: int = 0, on_round: Callable[[int, int], None] = lambda *_: None,
) -> dict[str, LatencyStats]:  # fmt: skip
    """Latency of several models measured side by side: `rounds` rounds, each loading every model in a fresh,
    shuffled order and timing `runs` decodes after `warmup`; each model's stats pool its `rounds * runs` samples.
    `loaders` map a name to a function returning a runner (as for `measure`); one runner is alive at a time."""
    if rounds < 1 or runs < 1 or not loaders:
        raise LatencyError(f"rounds={rounds} and runs={runs} must both be >= 1, with at least one model")
    rng = random.Random(seed)
    samples: dict[str, list[float]] = {name: [] for name in loaders}
    for r in range(rounds):
        order = list(loaders)
        rng.shuffle(order)
        for name in order:
            model = loaders[name]()
            samples[name] += measure_samples(model, workload, warmup, runs)
            del model
        on_round(r + 1, rounds)
    return {name: stats(ms) for name, ms in samples.items()}
