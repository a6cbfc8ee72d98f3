"""`hat latency measure | recheck | retest | fit | adapt`: the latency dataset on this host, its test-retest
error, the predictor, few-shot adaptation."""

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hat_engine.config import ArchConfig
    from hat_engine.latency.profile_fit import ProfileFit

DEFAULT_SUPERNET = Path("catalog/supernet.pt")


def register(commands: argparse._SubParsersAction) -> None:
    latency = commands.add_parser("latency", help="latency datasets and predictors").add_subparsers(
        dest="latency_command", metavar="ACTION"
    )
    latency.required = True
    m = latency.add_parser(
        "measure", help="measure sampled SubTransformers on this host (resumable), or one catalog entry (--entry)"
    )
    what = m.add_mutually_exclusive_group(required=True)
    what.add_argument("--samples", type=int, help="architectures to measure (resumes an earlier run)")
    what.add_argument("--entry", help='measure this catalog entry\'s served artifact; prints {"p50", "p95"}')
    m.add_argument("--catalog", type=Path, default=Path("catalog"), help="catalog folder for --entry")
    m.add_argument("--threads", type=int, help="--entry: intra-op threads (default: the entry's profile's)")
    m.add_argument("--out", type=Path, default=Path("latency"), help="folder of per-profile JSONL files")
    m.add_argument("--supernet", type=Path, default=DEFAULT_SUPERNET, help="weights to extract from")
    m.add_argument("--targets", default="onnxruntime:1,onnxruntime:2", help="backend:threads list")
    m.add_argument("--runs", type=int, default=20)
    m.add_argument("--warmup", type=int, default=3)
    m.add_argument("--seed", type=int, default=1)
    m.add_argument("--reference", action=argparse.BooleanOptionalAction, default=True,
                   help="time each arch run by run beside the space's smallest, so that a slow spell of the machine "
                        "cancels out of the ratio the predictor learns (default on)")  # fmt: skip
    m.set_defaults(run=run_measure)
    r = latency.add_parser("recheck", help="measure again the rows far off what the other rows predict")
    r.add_argument("--out", type=Path, default=Path("latency"), help="folder of per-profile JSONL files")
    r.add_argument("--supernet", type=Path, default=DEFAULT_SUPERNET)
    r.add_argument("--targets", default="onnxruntime:1,onnxruntime:2", help="backend:threads list")
    r.add_argument("--threshold", type=float, default=0.2, help="relative out-of-fold error that makes a suspect")
    r.add_argument("--runs", type=int, default=20)
    r.add_argument("--warmup", type=int, default=3)
    r.set_defaults(run=run_recheck)
    t = latency.add_parser("retest", help="test-retest error: the same archs measured twice, per statistic")
    t.add_argument("first", type=Path, help="a dataset file (`hat latency measure`)")
    t.add_argument("second", type=Path, help="the same profile, seed and indices measured again, later")
    t.add_argument("--json", type=Path, help="also write the errors here")
    t.set_defaults(run=run_retest)
    f = latency.add_parser("fit", help="train the latency predictor of one profile")
    f.add_argument("--data", type=Path, required=True, help="a dataset file written by `hat latency measure`")
    f.add_argument("--out", type=Path, required=True, help="predictor file to write (.pt); a .png lands beside it")
    f.add_argument("--features", choices=("hat", "per_layer", "both"), default="both")
    f.add_argument("--test", type=int, default=100, help="held-out architectures (fixed, seeded split)")
    f.add_argument("--epochs", type=int, default=3000)
    f.set_defaults(run=run_fit)
    a = latency.add_parser("adapt", help="map a predictor onto another profile from a few measurements")
    a.add_argument("--predictor", type=Path, required=True, help="the source profile's predictor")
    a.add_argument("--data", type=Path, required=True, help="the target profile's dataset")
    a.add_argument("--shots", type=int, default=20, help="target measurements used (default 20)")
    a.add_argument("--test", type=int, default=100, help="the target's held-out architectures")
    a.add_argument("--out", type=Path, help="write the adapted predictor here")
    a.set_defaults(run=run_adapt)


def parse_targets(spec: str):
    from hat_engine.latency.dataset import Target

    targets = []
    for item in spec.split(","):
        backend, _, threads = item.strip().partition(":")
        if backend not in ("onnxruntime", "torch") or not threads.isdigit() or int(threads) < 1:
            raise SystemExit(f"hat: error: --targets item {item!r}: use backend:threads, e.g. onnxruntime:2")
        targets.append(Target(backend, int(threads)))
    return targets


def run_measure_entry(args: argparse.Namespace) -> int:
    """One catalog entry on this host: its own artifact and runtime, the catalog's reference workload."""
    from hat_engine.catalog.schema import load_catalog
    from hat_engine.hardware import ProfileId
    from hat_engine.latency.timing import measure
    from hat_engine.serving.pool import TranslatorPool

    if args.runs < 1 or args.warmup < 0 or (args.threads is not None and args.threads < 1):
        raise SystemExit("hat: error: --runs and --threads must be >= 1, --warmup >= 0")
    catalog = load_catalog(args.catalog)
    entry = catalog.entry(args.entry)
    record = catalog.profile(entry.hardware_profile)
    fingerprint = record.fingerprint if record else {}
    profile = ProfileId.parse(entry.hardware_profile)
    backend = fingerprint.get("backend") or profile.backend
    threads = args.threads or int(fingerprint.get("threads") or profile.threads)
    pool = TranslatorPool(args.catalog, catalog, args.catalog / ".cache", backend, threads)
    stats = measure(pool.load(entry), catalog.reference_workload, args.warmup, args.runs)
    print(json.dumps({"p50": round(stats.p50, 3), "p95": round(stats.p95, 3)}))
    print(
        f"{entry.id}: {backend}, {threads} thread(s), {stats.runs} runs; the catalog says p50 "
        f"{entry.latency_ms['p50']:.1f} ms, p95 {entry.latency_ms['p95']:.1f} ms",
        file=sys.stderr,
    )
    return 0


@contextmanager
def arch_progress(samples: int) -> Iterator[Callable[[int, "ArchConfig", dict], None]]:
    """A live bar over the `samples` archs of a dataset; yields `build_dataset`'s `on_arch`."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    columns = (
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), TextColumn("{task.fields[last]}"),
    )  # fmt: skip
    with Progress(*columns) as progress:
        task = progress.add_task("measuring", total=samples, last="")

        def on_arch(index: int, arch: "ArchConfig", p50s: dict) -> None:
            progress.update(task, completed=index + 1, last=" ".join(f"{k} {v:.0f}ms" for k, v in p50s.items()))

        yield on_arch


def run_measure(args: argparse.Namespace) -> int:
    if args.entry is not None:
        return run_measure_entry(args)
    from hat_engine.latency.dataset import build_dataset
    from hat_engine.model.supernet import load_supernet

    targets = parse_targets(args.targets)
    if args.samples < 1 or args.runs < 1:
        raise SystemExit("hat: error: --samples and --runs must be >= 1")
    from hat_engine.runtime.onnx_graph import build_onnx

    supernet, _ = load_supernet(args.supernet)
    with arch_progress(args.samples) as on_arch:
        paths = build_dataset(supernet, targets, args.out, args.samples, build_onnx, args.seed, args.runs, args.warmup,
                              on_arch=on_arch, paired=args.reference)  # fmt: skip
    for target, path in paths.items():
        print(f"{target.backend} {target.threads}t -> {path}")
    return 0


def run_recheck(args: argparse.Namespace) -> int:
    from hat_engine.latency.dataset import recheck_dataset
    from hat_engine.model.supernet import load_supernet
    from hat_engine.runtime.onnx_graph import build_onnx

    if not 0 < args.threshold < 10:
        raise SystemExit("hat: error: --threshold is a relative error, e.g. 0.2")
    supernet, _ = load_supernet(args.supernet)

    def progress(done: int, total: int) -> None:
        print(f"rechecked {done}/{total}", file=sys.stderr, flush=True)

    counts = recheck_dataset(supernet, parse_targets(args.targets), args.out, build_onnx, args.threshold, args.runs,
                             args.warmup, on_arch=progress)  # fmt: skip
    print(json.dumps(counts, indent=2))
    return 0


def run_retest(args: argparse.Namespace) -> int:
    from hat_engine.latency.dataset import read_dataset
    from hat_engine.latency.retest import retest_errors, save_retest

    (h1, first), (h2, second) = read_dataset(args.first), read_dataset(args.second)
    if h1["profile"]["profile_id"] != h2["profile"]["profile_id"]:
        raise SystemExit(f"hat: error: {args.first} and {args.second} are of different hardware profiles")
    errors = retest_errors(first, second)
    print(f"{h1['profile']['profile_id']}: test-retest error over {next(iter(errors.values())).archs} archs")
    for e in errors.values():
        print(f"{e.statistic:>13}: mean {e.mean_pct:5.2f} %  median {e.median_pct:5.2f} %  max {e.max_pct:6.2f} %  "
              f"drift {e.bias_pct:+.2f} %")  # fmt: skip
    if args.json:
        save_retest(args.json, h1["profile"]["profile_id"], args.first, args.second, errors)
    return 0


def print_fit(fit: "ProfileFit") -> None:
    """Each candidate's held-out figures, which was kept and why, the saved record; a warning if `hat search`
    would refuse it."""
    from hat_engine.errors import UnusablePredictorError
    from hat_engine.latency.predictor import require_usable

    report = fit.report
    for name, m in report.candidates.items():
        mark = "  <- kept" if name == report.kept else ""
        tau = m["kendall_tau"]
        print(f"{name:>15}: MAPE {m['mape']:.2f} %  RMSE {m['rmse_ms']:.2f} ms  Kendall tau {tau:.3f}{mark}")
    print(report.note)
    print(json.dumps(fit.predictor.extra, indent=2))
    try:
        require_usable(fit.predictor, name=str(fit.path))  # the check `hat search` makes, with its default floor
    except UnusablePredictorError as exc:
        print(f"hat: warning: `hat search` will refuse this predictor: {exc}", file=sys.stderr)


def run_fit(args: argparse.Namespace) -> int:
    from hat_engine.latency.predictor import MIN_TEST_ARCHS
    from hat_engine.latency.profile_fit import fit_profile

    if args.test < MIN_TEST_ARCHS or args.epochs < 1:
        raise SystemExit(f"hat: error: --test must be >= {MIN_TEST_ARCHS} and --epochs >= 1")
    print_fit(fit_profile(args.data, args.out, args.features, args.test, args.epochs))
    return 0


def run_adapt(args: argparse.Namespace) -> int:
    from hat_engine.latency.dataset import dataset_archs, read_dataset
    from hat_engine.latency.predictor import LatencyPredictor, adapt, metrics, split_indices

    source = LatencyPredictor.load(args.predictor)
    header, rows = read_dataset(args.data)
    archs, ms = dataset_archs(rows)
    train, test = split_indices(len(rows), args.test)
    shots = train[: args.shots]
    adapted = adapt(source, [archs[i] for i in shots], [ms[i] for i in shots])
    measured = [ms[i] for i in test]
    before = metrics(source.predict([archs[i] for i in test]), measured)
    after = metrics(adapted.predict([archs[i] for i in test]), measured)
    result = {"target_profile": header["profile"]["profile_id"], "shots": len(shots), "n_test": len(test),
              "before": before, "after": after, "scale": adapted.scale, "exponent": adapted.exponent}  # fmt: skip
    if args.out:
        # the held-out figures at the top, as `hat latency fit` records them: `hat search` checks them
        adapted.save(args.out, {"adapted_from": str(args.predictor), **result, **after})
    print(json.dumps(result, indent=2))
    return 0
