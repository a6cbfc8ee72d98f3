"""`hat translate`: English lines on stdin -> German on stdout.

hat translate [--catalog DIR] [--sla-ms N | --entry ID] [--calibrate unseen|always] [--beam N]  # as `hat serve`
hat translate --supernet CKPT --arch largest|smallest|largest-decN|ARCH.yaml   # a SubTransformer, inherited
"""

import argparse
import sys
from pathlib import Path


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("translate", help="translate stdin lines (English) to stdout (German)")
    p.add_argument("--catalog", type=Path, help="a catalog folder (default catalog/, unless --supernet is given)")
    choose = p.add_mutually_exclusive_group()
    choose.add_argument("--sla-ms", type=float, help="the best entry whose p95 here meets this budget (ms)")
    choose.add_argument("--entry", help="this catalog entry id (see `hat catalog show`)")
    p.add_argument("--calibrate", choices=("unseen", "always"), default="unseen",
                   help="time the catalog's entries here before choosing: on an unseen host kind only (default), "
                        "or always (a VM whose speed drifts)")  # fmt: skip
    p.add_argument("--supernet", type=Path, help="a trained supernet instead of a catalog (with --arch)")
    p.add_argument("--tokenizer", type=Path, help="with --supernet: SentencePiece model (default: beside it)")
    p.add_argument("--arch", help="with --supernet: largest | smallest | largest-decN | ARCH.yaml (default largest)")
    p.add_argument("--threads", type=int, default=1, help="intra-op threads (default 1)")
    p.add_argument("--beam", type=int, default=4, help="beam size (1 = greedy; default 4)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    # Heavy imports (torch, matplotlib) stay inside run() so that every `hat` command starts fast.
    import torch

    from hat_engine.model.decoding import MAX_BEAM
    from hat_engine.model.translate import translate_texts

    if not 1 <= args.beam <= MAX_BEAM:
        raise SystemExit(f"hat: error: --beam {args.beam} must lie in 1..{MAX_BEAM}")
    if args.threads < 1:
        raise SystemExit(f"hat: error: --threads {args.threads}: use 1 or more")
    if args.supernet is not None and (args.catalog or args.sla_ms is not None or args.entry):
        raise SystemExit("hat: error: --supernet goes without --catalog, --sla-ms and --entry")
    if args.calibrate == "always" and (args.supernet is not None or args.entry):
        raise SystemExit("hat: error: --calibrate always goes with a catalog choice (--sla-ms or none), not --entry "
                         "or --supernet")  # fmt: skip
    if args.supernet is None and (args.arch or args.tokenizer):
        raise SystemExit("hat: error: --arch and --tokenizer go with --supernet")
    torch.set_num_threads(args.threads)
    model, tokenizer, label = _from_supernet(args) if args.supernet is not None else _from_catalog(args)
    lines = [line.strip() for line in sys.stdin]
    texts = [line for line in lines if line]
    translated = iter(t.text for t in translate_texts(model, tokenizer, texts, beam=args.beam))
    for line in lines:
        print(next(translated) if line else "")
    print(f"translated {len(texts)} line(s) with {label}", file=sys.stderr)
    return 0


def _from_supernet(args: argparse.Namespace):
    from search_jobs.subnets import arch_from_spec, load

    supernet, tokenizer = load(args)
    arch = arch_from_spec(supernet.space, args.arch or "largest")
    return supernet.extract(arch).eval(), tokenizer, f"{args.supernet} ({args.arch or 'largest'}, {arch.arch_id()})"


def _from_catalog(args: argparse.Namespace):
    from hat_engine.catalog.schema import load_catalog, verify_file
    from hat_engine.data.tokenizer import Tokenizer
    from hat_engine.hardware import detect
    from hat_engine.serving.engine import ServingEngine, ServingSettings
    from hat_engine.serving.pool import TranslatorPool

    folder = args.catalog or Path("catalog")
    catalog = load_catalog(folder)
    if args.entry is not None:
        entry = catalog.entry(args.entry)
        verify_file(folder, catalog.tokenizer, "tokenizer")
        pool = TranslatorPool(folder, catalog, folder / ".cache", "onnxruntime", args.threads)
        return pool.load(entry), Tokenizer(folder / catalog.tokenizer.path), f"catalog entry {entry.id}"
    host = detect("onnxruntime", args.threads, probe_cuda=False)
    settings = ServingSettings(folder, folder / ".cache", sla_ms=args.sla_ms, guard=None,
                               calibrate_always=args.calibrate == "always")  # fmt: skip
    engine = ServingEngine(settings, host, None)
    plan = engine.start()
    entry_id = plan.selected.entry_id
    sla = "no SLA" if args.sla_ms is None else f"SLA {args.sla_ms:g} ms{' (not met)' if plan.sla_violation else ''}"
    return engine.pool.load(catalog.entry(entry_id)), engine.tokenizer, f"catalog entry {entry_id} ({sla})"
