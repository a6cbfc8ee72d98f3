"""`hat catalog build | validate | show | merge`."""

import argparse
import json
import sys
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
    b.add_argument("--runs", type=int, default=6, help="timed runs per entry and round (default 6)")
    b.add_argument("--rounds", type=int, default=5,
                   help="interleaved rounds: every entry of a profile is timed once per round (default 5)")  # fmt: skip
    b.add_argument("--eval-limit", type=int, help="score only the first N test sentences (quick runs)")
    b.add_argument("--int8", action=argparse.BooleanOptionalAction, default=True,
                   help="also build int8 (dynamically quantised ONNX) entries, kept where BLEU holds")  # fmt: skip
    help_drop = "keep an int8 entry only if no test set loses more BLEU than this (default 0.5)"
    b.add_argument("--int8-max-bleu-drop", type=float, default=0.5, help=help_drop)
    help_ft = "fine-tune this many searched archs per profile; keep the weights where BLEU rises (default 2)"
    b.add_argument("--finetune", type=int, default=2, help=help_ft)
    b.add_argument("--finetune-minutes", type=float, default=8.0, help="wall-clock minutes per fine-tune")
    help_steps = ("optimizer steps per fine-tune, every arch alike (reproducible; replaces --finetune-minutes, under "
                  "which a larger arch gets fewer steps and the count depends on the machine's speed)")  # fmt: skip
    b.add_argument("--finetune-steps", type=int, help=help_steps)
    b.add_argument("--finetune-work", type=Path, default=Path("runs/finetune"), help="scratch checkpoints")
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

    from hat_engine.catalog.build import EntryBuilder, ProfileTarget, baseline_archs, predictor_record
    from hat_engine.catalog.check import unreferenced_weights
    from hat_engine.catalog.report import write_report
    from hat_engine.catalog.schema import dominated, save_catalog
    from hat_engine.config import ArchConfig
    from hat_engine.errors import ConfigError
    from hat_engine.latency.predictor import LatencyPredictor

    tokenizer = args.tokenizer or args.supernet.parent / "spm.model"
    if args.runs < 1 or args.rounds < 1:
        raise SystemExit("hat: error: --runs and --rounds must be at least 1")
    if args.finetune_steps is not None and args.finetune_steps < 1:
        raise SystemExit(f"hat: error: --finetune-steps {args.finetune_steps}: give at least 1 step")
    builder = EntryBuilder(args.out, args.supernet, tokenizer, args.data, runs=args.runs, rounds=args.rounds,
                           eval_limit=args.eval_limit)  # fmt: skip
    console = Console(stderr=True)
    profiles, jobs, searches, targets = [], [], {}, {}
    for path in args.results:
        results = json.loads(path.read_text())
        predictor = LatencyPredictor.load(Path(results["settings"]["predictor"]))
        if "profile" not in predictor.extra:
            raise ConfigError(f"{results['settings']['predictor']} holds no profile fingerprint; refit it")
        target = ProfileTarget.from_fingerprint(predictor.extra["profile"])
        targets[target.profile_id] = target
        profiles.append(predictor_record(args.out, Path(results["settings"]["predictor"]), target))
        searches[target.profile_id] = results["search"]
        for r in results["results"]:
            jobs.append((f"{target.profile_id}@{r['budget_ms']:g}ms", ArchConfig.from_dict(r["arch"]), target,
                         float(r["budget_ms"]), float(r["predicted_latency_ms"])))  # fmt: skip
        if args.baselines:
            for name, arch in baseline_archs(builder.supernet.space).items():
                jobs.append((f"{target.profile_id}@baseline-{name}", arch, target, 0.0, predictor.predict_one(arch)))
    built = []
    for n, job in enumerate(jobs, 1):
        built.append(builder.prepare(*job))
        console.print(f"[{n}/{len(jobs)}] {built[-1].id}: BLEU {built[-1].bleu}")
    entries = [e for e in built if "@baseline-" not in e.id]
    baselines = [e for e in built if "@baseline-" in e.id]
    entries, finetuned = _finetune_entries(builder, entries, targets, args, console)
    int8 = _int8_entries(builder, entries, targets, args.int8_max_bleu_drop, console) if args.int8 else {}
    twins = int8.pop("kept", [])
    int8["kept"] = [e.id for e in twins]

    def on_round(profile_id, r, n):
        console.print(f"{profile_id}: timing round {r}/{n} done")

    measured = builder.measure_all(entries + twins + baselines, targets, on_round)
    entries = [e for e in measured if "@baseline-" not in e.id]
    baselines = [e for e in measured if "@baseline-" in e.id]
    p50 = {e.id: e.latency_ms["p50"] for e in measured}
    for twin in twins:
        fp32 = twin.id.removesuffix("-int8")
        console.print(f"{twin.id}: p50 {p50[twin.id]:.1f} ms ({p50[fp32] / p50[twin.id]:.2f}x fp32)")
    candidates = list(entries)  # before the dominated are dropped: the report compares the search with the baselines
    # A searched entry that is slower and no better than another of its profile is of no use to anyone.
    dropped = {slow for p in profiles for slow, _ in dominated([e for e in entries if e.hardware_profile == p.id])}
    for entry_id in sorted(dropped):
        console.print(f"dropped {entry_id}: dominated (slower and no better) by another entry of its profile")
    entries = [e for e in entries if e.id not in dropped]
    used = {a.materialize.get("source") for e in entries for a in e.artifacts if a.materialize}
    for record in finetuned:  # fine-tuned weights whose entries were all dominated: not shipped
        if record["weights"] and record["weights"] not in used:
            (args.out / record["weights"]).unlink(missing_ok=True)
            record.update(weights=None, note="its entries were dropped as dominated")
    catalog = builder.catalog(
        profiles,
        entries,
        {"built_with": "hat catalog build", "dropped_dominated": sorted(dropped), "int8": int8, "finetune": finetuned},
    )
    save_catalog(catalog, args.out)
    for name in unreferenced_weights(args.out, catalog):
        console.print(f"warning: {name} is used by no entry (an earlier build's?); remove it before committing")
    write_report(args.out, catalog, baselines, searches, candidates)
    print(f"wrote {args.out / 'catalog.json'} ({len(entries)} entries), report.json and REPORT.md")
    return 0


def _finetune_entries(builder, entries: list, targets: dict, args, console) -> tuple[list, list]:
    """HAT Table 5 on our catalog: fine-tune `finetune_picks` (the `args.finetune` largest-budget archs of each
    profile) for a fixed number of steps (or minutes); where the mean BLEU rises, every entry of that arch (on any
    profile) is rebuilt from the fine-tuned weights. Returns the entries and what was done, kept or not."""
    from hat_engine.catalog.build import finetune_picks
    from hat_engine.train.finetune import FinetuneSettings, finetune

    picks = finetune_picks(entries, args.finetune)
    if args.finetune_steps is not None:
        settings, limit = FinetuneSettings(minutes=None, max_steps=args.finetune_steps), f"{args.finetune_steps} steps"
    else:
        settings, limit = FinetuneSettings(minutes=args.finetune_minutes), f"{args.finetune_minutes:g} min"
    records = []
    for e in picks:
        arch_id = e.arch.arch_id()
        name = f"finetuned/{arch_id}.pt"
        console.print(f"fine-tuning {arch_id} ({e.id}) for {limit}")
        info = finetune(builder.dir / "supernet.pt", e.arch, builder.data_dir, args.finetune_work / arch_id,
                        builder.dir / name, settings)  # fmt: skip
        tuned = builder.prepare(e.id, e.arch, targets[e.hardware_profile], e.latency_budget_ms,
                                e.predicted_latency_ms, source=name)  # fmt: skip
        kept = tuned.mean_bleu > e.mean_bleu
        verdict = "kept" if kept else "not kept"
        console.print(f"{arch_id}: BLEU inherited {e.bleu} -> fine-tuned {tuned.bleu}: {verdict}")
        records.append({"arch_id": arch_id, "entry": e.id, **info, "bleu_inherited": e.bleu,
                        "bleu_finetuned": tuned.bleu, "chrf_inherited": e.chrf, "chrf_finetuned": tuned.chrf,
                        "kept": kept, "weights": name if kept else None})  # fmt: skip
        if not kept:
            (builder.dir / name).unlink()
            continue
        entries = [
            (
                tuned
                if x.id == e.id
                else builder.prepare(
                    x.id, x.arch, targets[x.hardware_profile], x.latency_budget_ms, x.predicted_latency_ms, source=name
                )
            )  # fmt: skip
            if x.arch.arch_id() == arch_id
            else x
            for x in entries
        ]
    return entries, records


def _int8_entries(builder, entries: list, targets: dict, max_drop: float, console) -> dict:
    """An int8 twin of every searched entry (not yet timed), from the same weights (inherited or fine-tuned); kept
    where no test set loses more than `max_drop` BLEU. BLEU is per arch and weights, so an arch that fails on one
    profile is not scored again on the next."""
    from hat_engine.catalog.build import SUPERNET_FILE

    kept, rejected, drops = [], {}, {}
    for e in entries:
        source = (e.artifacts[0].materialize or {}).get("source")  # the fine-tuned weights, where the entry has them
        source = None if source == SUPERNET_FILE else source
        key, twin_id = (e.arch.arch_id(), source), e.id + "-int8"
        if key in drops and drops[key] > max_drop:
            rejected[twin_id] = drops[key]
            continue
        twin = builder.prepare(twin_id, e.arch, targets[e.hardware_profile], e.latency_budget_ms,
                               e.predicted_latency_ms, fmt="onnx-int8", source=source)  # fmt: skip
        drops[key] = round(max(e.bleu[k] - twin.bleu[k] for k in e.bleu), 2)
        console.print(f"{twin_id}: BLEU drop {drops[key]}")
        if drops[key] <= max_drop:
            kept.append(twin)
        else:
            rejected[twin_id] = drops[key]
    return {"max_bleu_drop": max_drop, "kept": kept, "rejected_bleu_drop": rejected}


def run_validate(args: argparse.Namespace) -> int:
    from hat_engine.catalog.check import unreferenced_weights, validate_catalog

    catalog, problems = validate_catalog(args.dir, materialized=args.materialize)
    for problem in problems:
        print(f"problem: {problem}")
    for name in unreferenced_weights(args.dir, catalog):
        print(f"warning: {name} is used by no entry; remove it", file=sys.stderr)
    if problems:
        raise SystemExit(f"hat: error: catalog {args.dir} has {len(problems)} problem(s)")
    n = len(catalog.entries)
    print(f"catalog {args.dir}: valid ({n} entries, {len(catalog.hardware_profiles)} hardware profiles)")
    return 0


def run_show(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from hat_engine.catalog.schema import load_catalog

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

    from hat_engine.catalog.schema import load_catalog, merge, save_catalog

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
