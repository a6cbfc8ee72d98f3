"""One profile's latency predictor from its measured dataset: fitted, compared, saved with its held-out figures
and a predicted-vs-measured plot. What `hat latency fit` and `hat pipeline` both run."""

from dataclasses import dataclass
from pathlib import Path

from hat_engine.config import SearchSpace
from hat_engine.errors import ConfigError
from hat_engine.latency.dataset import dataset_archs, read_dataset
from hat_engine.latency.predictor import FEATURE_SETS, FitReport, LatencyPredictor, fit_and_pick, split_indices
from hat_engine.train.plots import plot_predictions

FEATURE_CHOICES = (*FEATURE_SETS, "both")


@dataclass(frozen=True)
class ProfileFit:
    """The predictor kept (saved at `path`; `predictor.extra` holds its held-out metrics) and what it beat."""

    predictor: LatencyPredictor
    report: FitReport
    path: Path


def fit_profile(data: Path, out: Path, features: str = "both", test: int = 100, epochs: int = 3000) -> ProfileFit:
    """Fit the predictor of the profile measured in `data` on all but `test` held-out archs (a fixed, seeded
    split), with `features` ('hat', 'per_layer' or 'both', compared); save it at `out`, its plot beside it."""
    if features not in FEATURE_CHOICES:
        raise ConfigError(f"features {features!r}: choose one of {', '.join(FEATURE_CHOICES)}")
    header, rows = read_dataset(data)
    if len(rows) < test + 10:
        raise ConfigError(f"{data} has {len(rows)} rows; need more than --test {test} + 10")
    space = SearchSpace.from_dict(header["space"])
    archs, ms = dataset_archs(rows)
    _, held_out = split_indices(len(rows), test)
    feature_sets = FEATURE_SETS if features == "both" else (features,)
    predictor, report = fit_and_pick(space, archs, ms, held_out, feature_sets, epochs)
    m, profile_id = report.metrics, header["profile"]["profile_id"]
    predictor.extra = {"profile_id": profile_id, "profile": header["profile"], "n_train": len(rows) - len(held_out),
                       "n_test": len(held_out), **m, "kept": report.kept, "compared": report.candidates}  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    predictor.save(out)
    figures = f"MAPE {m['mape']:.1f} %, Kendall tau {m['kendall_tau']:.3f}, {len(held_out)} held out"
    title = f"{profile_id}\n{report.kept}: {figures}"
    plot_predictions([ms[i] for i in held_out], report.predicted, title, out.with_suffix(".png"))
    return ProfileFit(predictor, report, out)
