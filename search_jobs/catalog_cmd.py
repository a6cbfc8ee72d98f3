"""`hat catalog build | validate | show | merge`."""

import argparse
import json
from pathlib import Path


def register(commands: argparse._SubParsersAction) -> None:
    cat = commands.add_parser("catalog", help="the catalog of SubTransformers").add_subparsers(
        dest="catalog_command", metavar="ACTION"
    )
    cat.required = True
    b = cat.add_parser("build", help="measure and score searched SubTransformers (and baselines) into a catalog")
    b.add_argument("--results", type=Path, action="append", required=True, help="`hat search` output (repeatable)")
    b.add_argument("--supernet", type=Path, default=Path("catalog/supernet.pt"))
    b.add_argument("--tokenizer", type=Path, help="default: spm.model beside the supernet")
    b.add_argument("--data", type=Path, default=Path("data"), help="corpus with the test sets")
    b.add_argument("--out", type=Path, default=Path("catalog"))
    b.add_argument("--baselines", action=argparse.BooleanOptionalAction, default=True)
    b.add_argument("--runs", type=int, default=20, help="timed runs per entry")
    b.add_argument("--eval-limit", type=int, help="score only the first N test sentences (quick runs)")
    b.set_defaults(run=run_build)
    v = cat.add_parser("validate", help="check schema, files and checksums")
    v.add_argument("dir", nargs="?", type=Path, default=Path("catalog"))
    v.add_argument("--materialize", action="store_true", help="also rebuild every artifact and check its weights")
    v.set_defaults(run=run_validate)
    s = cat.add_parser("show", help="print the catalog as a table")
    s.add_argument("dir", nargs="?", type=Path, default=Path("catalog"))
    s.set_defaults(run=run_show)
    m = cat.add_parser("merge", help="combine catalogs built on different hosts")
    m.add_argument("dirs", nargs="+", type=Path)
    m.add_argument("--out", type=Path, required=True)
    m.set_defaults(run=run_merge)


def run_build(args: argparse.Namespace) -> int:
    from rich.console import Console

    from hat_engine.catalog import dominated, save_catalog
    from hat_engine.catalog_build import EntryBuilder, ProfileTarget, baseline_archs, build_all, predictor_record
    from hat_engine.config import ArchConfig
    from hat_engine.errors import ConfigError
    from hat_engine.predictor import LatencyPredictor
    from hat_engine.report import write_report

    tokenizer = args.tokenizer or args.supernet.parent / "spm.model"
    builder = EntryBuilder(args.out, args.supernet, tokenizer, args.data, runs=args.runs, eval_limit=args.eval_limit)
    console = Console(stderr=True)
    profiles, jobs, searches = [], [], {}
    for path in args.results:
        results = json.loads(path.read_text())
        predictor = LatencyPredictor.load(Path(results["settings"]["predictor"]))
        if "profile" not in predictor.extra:
            raise ConfigError(f"{results['settings']['predictor']} holds no profile fingerprint; refit it")
        target = ProfileTarget.from_fingerprint(predictor.extra["profile"])
        profiles.append(predictor_record(args.out, Path(results["settings"]["predictor"]), target))
        searches[target.profile_id] = results["search"]
        for r in results["results"]:
            jobs.append((f"{target.profile_id}@{r['budget_ms']:g}ms", ArchConfig.from_dict(r["arch"]), target,
                         float(r["budget_ms"]), float(r["predicted_latency_ms"])))  # fmt: skip
        if args.baselines:
            for name, arch in baseline_archs(builder.supernet.space).items():
                jobs.append((f"{target.profile_id}@baseline-{name}", arch, target, 0.0, predictor.predict_one(arch)))
    done = []

    def on_entry(e):
        done.append(e)
        console.print(f"[{len(done)}/{len(jobs)}] {e.id}: p50 {e.latency_ms['p50']:.1f} ms, BLEU {e.bleu}")

    built = build_all(builder, jobs, on_entry)
    entries = [e for e in built if "@baseline-" not in e.id]
    baselines = [e for e in built if "@baseline-" in e.id]
    # A searched entry that is slower and no better than another of its profile is of no use to anyone.
    dropped = {slow for p in profiles for slow, _ in dominated([e for e in entries if e.hardware_profile == p.id])}
    for entry_id in sorted(dropped):
        console.print(f"dropped {entry_id}: dominated (slower and no better) by another entry of its profile")
    entries = [e for e in entries if e.id not in dropped]
    catalog = builder.catalog(
        profiles, entries, {"built_with": "hat catalog build", "dropped_dominated": sorted(dropped)}
    )
    save_catalog(catalog, args.out)
    write_report(args.out, catalog, baselines, searches)
    print(f"wrote {args.out / 'catalog.json'} ({len(entries)} entries), report.json and REPORT.md")
    return 0


def run_validate(args: argparse.Namespace) -> int:
    from hat_engine.catalog_check import validate_catalog

    catalog, problems = validate_catalog(args.dir, materialized=args.materialize)
    for problem in problems:
        print(f"problem: {problem}")
    if problems:
        raise SystemExit(f"hat: error: catalog {args.dir} has {len(problems)} problem(s)")
    n = len(catalog.entries)
    print(f"catalog {args.dir}: valid ({n} entries, {len(catalog.hardware_profiles)} hardware profiles)")
    return 0


def run_show(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from hat_engine.catalog import load_catalog

    catalog = load_catalog(args.dir)
    for p in catalog.hardware_profiles:
        table = Table(title=p.id + (f" (predictor MAPE {p.predictor.mape:.1f} %)" if p.predictor else ""))
        for col in ("entry", "budget ms", "p50 ms", "p95 ms", "pred ms", "params", "BLEU", "chrF", "dec layers"):
            table.add_column(col)
        for e in catalog.entries_for(p.id):
            table.add_row(
                e.id, f"{e.latency_budget_ms:g}", f"{e.latency_ms['p50']:.1f}", f"{e.latency_ms['p95']:.1f}",
                f"{e.predicted_latency_ms:.1f}", f"{e.params / 1e6:.2f}M",
                " / ".join(f"{v:.1f}" for v in e.bleu.values()), " / ".join(f"{v:.1f}" for v in e.chrf.values()),
                str(e.arch.decoder_depth),
            )  # fmt: skip
        Console().print(table)
    return 0


def run_merge(args: argparse.Namespace) -> int:
    import shutil

    from hat_engine.catalog import load_catalog, merge, save_catalog

    catalogs = [load_catalog(d) for d in args.dirs]
    merged = merge(catalogs)
    args.out.mkdir(parents=True, exist_ok=True)
    for folder, catalog in zip(args.dirs, catalogs, strict=True):
        refs = [catalog.tokenizer, catalog.supernet] + [p.predictor for p in catalog.hardware_profiles if p.predictor]
        for ref in refs:
            target = args.out / ref.path
            if (folder / ref.path).resolve() != target.resolve():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(folder / ref.path, target)
    save_catalog(merged, args.out)
    print(f"merged {len(args.dirs)} catalogs into {args.out}: {len(merged.entries)} entries")
    return 0
