"""`hat catalog build | validate | show | merge`."""

import argparse
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
    help_archs = ("fine-tune these searched archs (arch ids, as REPORT.md lists them) instead of --finetune's largest-"
                  "budget ones; a fine-tune already in --finetune-work is reused")  # fmt: skip
    b.add_argument("--finetune-archs", nargs="+", default=(), metavar="ARCH_ID", help=help_archs)
    b.add_argument("--finetune-minutes", type=float, default=8.0, help="wall-clock minutes per fine-tune")
    help_steps = ("optimizer steps per fine-tune, every arch alike (reproducible; replaces --finetune-minutes, under "
                  "which a larger arch gets fewer steps and the count depends on the machine's speed)")  # fmt: skip
    b.add_argument("--finetune-steps", type=int, help=help_steps)
    b.add_argument("--finetune-work", type=Path, default=Path("runs/finetune"), help="scratch checkpoints")
    b.add_argument("--finetune-delta", action=argparse.BooleanOptionalAction, default=True,
                   help="store fine-tuned weights as an int8 delta on the supernet where mean BLEU holds within "
                        "--delta-max-bleu-drop of the whole fp16 file (both scored)")  # fmt: skip
    b.add_argument("--delta-max-bleu-drop", type=float, default=0.1, help="(default 0.1)")
    b.add_argument("--finetune-baselines", action=argparse.BooleanOptionalAction, default=True,
                   help="with --finetune: fine-tune the hand-scaled baselines alike, for the report's fine-tuned vs "
                        "fine-tuned comparison (their weights are not shipped)")  # fmt: skip
    b.add_argument(
        "--retest",
        type=Path,
        default=Path("latency/retest"),
        help="folder of `hat latency retest --json` files (PROFILE.json): each profile's measured noise "
        "floor goes into REPORT.md beside its predictor's error (default latency/retest)",
    )
    help_workers = ("score the searched archs, their int8 twins and the baselines ahead in this many one-thread "
                    "processes (default 2, one per core here; 1: each in turn, in this process)")  # fmt: skip
    b.add_argument("--score-workers", type=int, default=2, help=help_workers)
    help_from = ("an earlier catalog (another host's build of the same supernet): take the scores it recorded for "
                 "the same arch, weights and format (and those its build folder's score cache holds) instead of "
                 "scoring again (repeatable)")  # fmt: skip
    b.add_argument("--scores-from", type=Path, action="append", default=[], help=help_from)
    help_pool = ("build every profile from every search's archs, not only its own search's (their budget: the "
                 "profile's predicted latency); the entries timed dominated are dropped as ever")  # fmt: skip
    b.add_argument("--pool", action=argparse.BooleanOptionalAction, default=False, help=help_pool)
    help_pool_from = ("another `hat search` output whose archs join every profile's candidates, as --pool's do, "
                      "though its own profile is not built (one this host cannot time); repeatable")  # fmt: skip
    b.add_argument("--pool-from", type=Path, action="append", default=[], metavar="RESULTS", help=help_pool_from)
    help_tuned_from = ("an earlier catalog of the same supernet: a fine-tune pick whose fine-tuned weights it ships "
                       "takes that file as it is instead of being fine-tuned again (repeatable)")  # fmt: skip
    b.add_argument("--finetuned-from", type=Path, action="append", default=[], metavar="CATALOG",
                   help=help_tuned_from)  # fmt: skip
    help_latency_from = ("an earlier build of the same profiles (a catalog folder): an entry it timed (same profile, "
                         "arch and format; its candidates and baselines included) takes that latency instead of being "
                         "timed again, since weights do not change it; the rest are timed (repeatable)")  # fmt: skip
    b.add_argument("--latency-from", type=Path, action="append", default=[], metavar="CATALOG",
                   help=help_latency_from)  # fmt: skip
    help_max_mb = ("ship at most this many MB of fine-tuned weights in all (picks in order); a pick past it is still "
                   "fine-tuned and scored for the report, not shipped (default: no limit)")  # fmt: skip
    b.add_argument("--finetune-max-mb", type=float, help=help_max_mb)
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

    from hat_engine.catalog.build import EntryBuilder
    from hat_engine.catalog.policy import BuildPolicy, build_catalog
    from hat_engine.search.results import SearchResults

    if args.runs < 1 or args.rounds < 1:
        raise SystemExit("hat: error: --runs and --rounds must be at least 1")
    if args.finetune_steps is not None and args.finetune_steps < 1:
        raise SystemExit(f"hat: error: --finetune-steps {args.finetune_steps}: give at least 1 step")
    policy = BuildPolicy(baselines=args.baselines, finetune=args.finetune, finetune_archs=tuple(args.finetune_archs),
                         finetune_minutes=args.finetune_minutes,
                         finetune_steps=args.finetune_steps, finetune_work=args.finetune_work, int8=args.int8,
                         int8_max_bleu_drop=args.int8_max_bleu_drop, finetune_delta=args.finetune_delta,
                         delta_max_bleu_drop=args.delta_max_bleu_drop,
                         finetune_baselines=args.finetune_baselines, retest_dir=args.retest,
                         score_workers=args.score_workers, scores_from=tuple(args.scores_from),
                         pool=args.pool, pool_from=tuple(args.pool_from),
                         finetuned_from=tuple(args.finetuned_from), latency_from=tuple(args.latency_from),
                         finetune_max_mb=args.finetune_max_mb)  # fmt: skip
    searches = [SearchResults.load(path) for path in args.results]
    tokenizer = args.tokenizer or args.supernet.parent / "spm.model"
    builder = EntryBuilder(args.out, args.supernet, tokenizer, args.data, runs=args.runs, rounds=args.rounds,
                           eval_limit=args.eval_limit)  # fmt: skip
    console = Console(stderr=True)
    catalog = build_catalog(builder, searches, policy, say=console.print)
    print(f"wrote {args.out / 'catalog.json'} ({len(catalog.entries)} entries), report.json and REPORT.md")
    return 0


def run_validate(args: argparse.Namespace) -> int:
    validate(args.dir, materialize=args.materialize)
    return 0


def validate(folder: Path, materialize: bool = False) -> None:
    """Print the catalog's problems and unused weight files; exit non-zero on any problem."""
    from hat_engine.catalog.check import unreferenced_weights, validate_catalog

    catalog, problems = validate_catalog(folder, materialized=materialize)
    for problem in problems:
        print(f"problem: {problem}")
    for name in unreferenced_weights(folder, catalog):
        print(f"warning: {name} is used by no entry; remove it", file=sys.stderr)
    if problems:
        raise SystemExit(f"hat: error: catalog {folder} has {len(problems)} problem(s)")
    n = len(catalog.entries)
    print(f"catalog {folder}: valid ({n} entries, {len(catalog.hardware_profiles)} hardware profiles)")


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

    from hat_engine.catalog.report import write_merged_report
    from hat_engine.catalog.schema import load_catalog, merge, save_catalog
    from hat_engine.checksums import sha256_file

    catalogs = [load_catalog(d) for d in args.dirs]
    merged = merge(catalogs)
    args.out.mkdir(parents=True, exist_ok=True)
    copies: dict[Path, tuple[Path, str]] = {}  # target -> (source, its sha256): checked before anything is copied
    for folder, catalog in zip(args.dirs, catalogs, strict=True):
        refs = {catalog.tokenizer.path: catalog.tokenizer.sha256, catalog.supernet.path: catalog.supernet.sha256}
        refs |= {p.predictor.path: p.predictor.sha256 for p in catalog.hardware_profiles if p.predictor}
        stamps = [a.materialize for e in catalog.entries for a in e.artifacts if a.materialize]
        refs |= {m["source"]: m.get("source_sha256") for m in stamps  # fine-tuned weights
                 if m.get("source") not in (None, catalog.supernet.path)}  # fmt: skip
        for ref, sha in refs.items():  # the sha256 the catalog records (hashed only where it records none)
            source, target = folder / ref, args.out / ref
            sha = sha or sha256_file(source)
            if target in copies and copies[target][1] != sha:
                raise SystemExit(f"hat: error: {source} and {copies[target][0]} differ and would both be {target}; "
                                 "rename one")  # fmt: skip
            copies.setdefault(target, (source, sha))
    for target, (source, _) in copies.items():
        if source.resolve() != target.resolve():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
    save_catalog(merged, args.out)
    profiles = [{p.id for p in c.hardware_profiles} for c in catalogs]
    missing = write_merged_report(args.out, merged, list(zip(args.dirs, profiles, strict=True)))
    for folder in missing:
        print(f"warning: {folder} has no report.json: its profiles' baselines and comparisons are not in the report")
    print(f"merged {len(args.dirs)} catalogs into {args.out}: {len(merged.entries)} entries, report.json and REPORT.md")
    return 0
