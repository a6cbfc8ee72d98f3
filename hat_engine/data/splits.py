"""Splits as written to disk, and the filters every split goes through (DATA.md)."""

from dataclasses import dataclass
from pathlib import Path

from hat_engine.data.text import MAX_TOKENS, char_ratio_ok, normalise
from hat_engine.data.tokenizer import Tokenizer
from hat_engine.errors import DataError

FILE_SUFFIXES = ("en", "de", "de2")  # source, reference, optional second reference; `.keys` beside them
CUSTOM_KEYS = ("train-src", "train-tgt", "valid-src", "valid-tgt", "test-src", "test-tgt")


@dataclass(frozen=True)
class Split:
    """One named split: (English, [German reference, optional second reference]) pairs."""

    name: str
    role: str  # "train", "valid" or "test"
    source: str  # "bible", "ding" or "custom"
    pairs: list[tuple[str, list[str]]]
    keys: list[str] | None = None  # where each pair comes from, e.g. the verse key "1.1.3"

    def keep(self, kept: list[bool]) -> "Split":
        """The same split with only the pairs (and keys) marked True."""
        pairs = [p for p, keep in zip(self.pairs, kept, strict=True) if keep]
        keys = None if self.keys is None else [k for k, keep in zip(self.keys, kept, strict=True) if keep]
        return Split(self.name, self.role, self.source, pairs, keys)

    def write(self, folder: Path) -> dict:
        """Write one file per side, one sentence a line; return the manifest record (sha256 filled later)."""
        n_refs = min((len(refs) for _, refs in self.pairs), default=1)
        columns = [[src for src, _ in self.pairs]] + [[refs[i] for _, refs in self.pairs] for i in range(n_refs)]
        files = {}
        for suffix, lines in zip(FILE_SUFFIXES, columns, strict=False):
            path = f"{self.name}.{suffix}"
            (folder / path).write_text("".join(line + "\n" for line in lines), encoding="utf-8")
            files[suffix] = {"path": path, "sha256": ""}
        if self.keys is not None:
            (folder / f"{self.name}.keys").write_text("".join(k + "\n" for k in self.keys), encoding="utf-8")
            files["keys"] = {"path": f"{self.name}.keys", "sha256": ""}
        return {"role": self.role, "source": self.source, "pairs": len(self.pairs), "files": files}


def _count(dropped: dict[str, dict[str, int]], split: str, reason: str, n: int) -> None:
    if n:
        dropped.setdefault(split, {})[reason] = dropped.get(split, {}).get(reason, 0) + n


def filter_ratio(split: Split, dropped: dict[str, dict[str, int]]) -> Split:
    """Drop pairs whose source/first-reference character-length ratio lies outside 0.5–2."""
    kept = [char_ratio_ok(src, refs[0]) for src, refs in split.pairs]
    _count(dropped, split.name, "char_ratio", kept.count(False))
    return split.keep(kept)


def drop_leaks(splits: list[Split], dropped: dict[str, dict[str, int]]) -> list[Split]:
    """Remove from train every pair whose English or German side (normalised) is also in valid or test."""
    held_en, held_de = set(), set()
    for split in splits:
        if split.role != "train":
            for src, refs in split.pairs:
                held_en.add(normalise(src))
                held_de.update(normalise(r) for r in refs)
    out = []
    for split in splits:
        if split.role == "train":
            kept = [normalise(src) not in held_en and normalise(refs[0]) not in held_de for src, refs in split.pairs]
            _count(dropped, split.name, "overlaps_valid_or_test", kept.count(False))
            split = split.keep(kept)
        out.append(split)
    return out


def filter_tokens(split: Split, tokenizer: Tokenizer, dropped: dict[str, dict[str, int]]) -> Split:
    """Drop pairs with a side longer than 200 SentencePiece pieces."""
    srcs = tokenizer.encode([src for src, _ in split.pairs])
    refs = tokenizer.encode([r[0] for _, r in split.pairs])
    kept = [len(s) <= MAX_TOKENS and len(t) <= MAX_TOKENS for s, t in zip(srcs, refs, strict=True)]
    _count(dropped, split.name, "too_long", kept.count(False))
    return split.keep(kept)


def _read_lines(path: Path) -> list[str]:
    try:
        return [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path} as UTF-8 text ({exc})") from exc


def read_custom(files: dict[str, Path]) -> list[Split]:
    """A user's own aligned plain-text files: train, valid and test, source and target each."""
    missing = [k for k in CUSTOM_KEYS if k not in files]
    if missing:
        raise DataError(f"a custom corpus needs all of --{', --'.join(CUSTOM_KEYS)}; missing --{', --'.join(missing)}")
    splits = []
    for role in ("train", "valid", "test"):
        src, tgt = _read_lines(files[f"{role}-src"]), _read_lines(files[f"{role}-tgt"])
        if len(src) != len(tgt):
            raise DataError(
                f"--{role}-src has {len(src)} lines but --{role}-tgt has {len(tgt)}; the files must be aligned"
            )
        pairs = [(s, [t]) for s, t in zip(src, tgt, strict=True) if s and t]
        if not pairs:
            raise DataError(f"--{role}-src/--{role}-tgt hold no non-empty sentence pairs")
        splits.append(Split(f"custom_{role}", role, "custom", pairs))
    return splits
