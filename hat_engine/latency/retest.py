"""Test-retest error of a latency protocol: the same archs measured twice, apart in time, compared per statistic.

A predictor cannot be more accurate than the labels it learns from, so the error between two measurements of the
same archs is the floor its held-out MAPE is judged against (issue #19). Each statistic a dataset row offers is
compared: the p50 and the trimmed mean as measured, and, for rows timed beside the reference arch, the figure
the predictor learns (`dataset_archs`: the ratio times the reference's median p50) and the raw ratio.
"""

import json
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path

from hat_engine.errors import DataError
from hat_engine.latency.dataset import LatencyRow, dataset_archs


@dataclass(frozen=True)
class RetestError:
    """Relative differences |a - b| / mean(a, b) over the archs both measurements hold, in percent."""

    statistic: str
    archs: int
    mean_pct: float
    median_pct: float
    max_pct: float
    bias_pct: float  # mean of (b - a) / mean(a, b): a drift between the two sittings, not noise

    def to_dict(self) -> dict:
        return {k: round(v, 2) if isinstance(v, float) else v for k, v in asdict(self).items()}


def _errors(name: str, a: list[float], b: list[float]) -> RetestError:
    rel = [(y - x) / ((x + y) / 2) for x, y in zip(a, b, strict=True)]
    absolute = [abs(r) * 100 for r in rel]
    return RetestError(name, len(rel), statistics.fmean(absolute), statistics.median(absolute), max(absolute),
                       statistics.fmean(rel) * 100)  # fmt: skip


def retest_errors(first: list[LatencyRow], second: list[LatencyRow]) -> dict[str, RetestError]:
    """Per statistic, the test-retest error of the archs (by index, same arch) both row lists hold."""
    a = {r.index: r for r in first}
    both = [(a[r.index], r) for r in second if r.index in a]
    if len(both) < 2:
        raise DataError(f"the two measurements share {len(both)} archs; measure the same seed and indices twice")
    for x, y in both:
        if x.arch != y.arch:
            raise DataError(f"row {x.index} holds different archs in the two measurements: another seed or space?")
    rows_a, rows_b = [x for x, _ in both], [y for _, y in both]
    out = {}
    for stat in ("p50", "trimmed_mean", "p95"):
        if all(stat in x.stats and stat in y.stats for x, y in both):
            out[stat] = _errors(stat, [x.stats[stat] for x in rows_a], [y.stats[stat] for y in rows_b])
    if all(x.ratio is not None and y.ratio is not None for x, y in both):
        out["ratio"] = _errors("ratio", [x.ratio for x in rows_a], [y.ratio for y in rows_b])
        out["fitted"] = _errors("fitted", dataset_archs(rows_a)[1], dataset_archs(rows_b)[1])
    return out


def save_retest(path: Path, profile_id: str, first: Path, second: Path, errors: dict[str, RetestError]) -> None:
    """The `hat latency retest --json` file: the profile, both measurements and each statistic's error."""
    payload = {"profile_id": profile_id, "first": str(first), "second": str(second),
               "errors": {k: e.to_dict() for k, e in errors.items()}}  # fmt: skip
    Path(path).write_text(json.dumps(payload, indent=2) + "\n")


def load_retests(folder: Path | None, profile_ids: list[str]) -> dict[str, dict]:
    """Each profile's `save_retest` file in `folder` (`PROFILE.json`), where one was measured, with its path."""
    found = {}
    for profile_id in profile_ids:
        path = None if folder is None else Path(folder) / f"{profile_id}.json"
        if path is not None and path.is_file():
            found[profile_id] = {"file": str(path), **json.loads(path.read_text())}
    return found
