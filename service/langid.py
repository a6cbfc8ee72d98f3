"""Language identification for `POST /detect` and `source: "auto"`: py3langid (langid.py's model, 97 languages,
shipped inside the package; numpy only).

Picked over lingua-language-detector on this repository's test lines (`bench/language_id.py`, 100 Ding + 100 Bible
lines per language): py3langid 99.5 % English / 100 % German right, lingua (high accuracy) 97.0 / 100 %, at a
tenth of the memory (130 MB against 1.36 GB resident, per BentoML worker) and 2 s to load against 19 s. Short
inputs are hard for both (one or two words; see docs/service.md), so `source: "auto"` refuses a text only when
the identifier is confident that it is *not* English (`REFUSE_CONFIDENCE`): on those lines that threshold
refused no English text, short or long, and 99 % of the German sentences.
"""

from __future__ import annotations

import json
import mmap
import os
import re
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hat_engine.checksums import sha256_file

REFUSE_CONFIDENCE = 0.5  # auto: another language this sure -> 400; below it the text is taken as English
CANDIDATES = 3  # languages `/detect` lists per text, most likely first
_LETTER = re.compile(r"[^\W\d_]")


@dataclass(frozen=True)
class Detection:
    language: str  # ISO 639-1 (or 639-3 where langid.py has no two-letter code)
    confidence: float  # 0-100, as LibreTranslate reports it

    def to_dict(self) -> dict:
        return {"confidence": self.confidence, "language": self.language}


_MAPPED = ("ptc", "pc", "nextmove", "nextmove_row", "out_feat")  # the model's arrays, one .npy file each
_lock = threading.Lock()
_loaded = None


def _model_file() -> Path:
    from py3langid.langid import MODEL_DIR, MODEL_FILE

    return MODEL_DIR / MODEL_FILE


def _write_mapped(folder: Path, source_sha: str) -> None:
    """Uncompressed copies of the packaged model's arrays in `folder`, written atomically (workers may race)."""
    from py3langid.modelio import load_model

    ptc, pc, classes, nextmove, row, output = load_model(_model_file())
    arrays = {"ptc": ptc, "pc": pc, "nextmove": np.frombuffer(nextmove, dtype=f"u{nextmove.itemsize}"),
              "nextmove_row": np.frombuffer(row, dtype=f"u{row.itemsize}").astype(np.int64),  # shifted by 8: no u16
              "out_feat": np.asarray(output)}  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        with tempfile.NamedTemporaryFile(dir=folder, suffix=".npy", delete=False) as tmp:
            np.save(tmp, array)
            tmp.flush()
            os.fsync(tmp.fileno())
            # Out of the page cache: written pages sit there in large folios, and a mapping faults in a whole
            # folio at a time (one sentence mapped 30 MB of the model); re-read under MADV_RANDOM they come
            # back a page at a time.
            os.posix_fadvise(tmp.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        os.replace(tmp.name, folder / f"{name}.npy")
    (folder / "classes.json").write_text(json.dumps(classes))
    (folder / "source.sha256").write_text(source_sha)  # last: marks the copy complete


def _map_npy(path: Path) -> np.ndarray:
    """A read-only array over the .npy file's bytes, mapped with MADV_RANDOM: a lookup faults in its own page,
    not its neighbours (no read-ahead)."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(f)
        offset = f.tell()
        mapped = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
    if hasattr(mmap, "MADV_RANDOM"):
        mapped.madvise(mmap.MADV_RANDOM)
    array = np.frombuffer(mapped, dtype=dtype, count=int(np.prod(shape)), offset=offset)
    return array.reshape(shape, order="F" if fortran else "C")


def _mapped_identifier(folder: Path):
    """py3langid's identifier over memory-mapped arrays: a worker keeps resident only the pages its texts touch
    (and workers share them), where the packaged loader holds the whole model in private memory (75 MB)."""
    from py3langid.langid import LanguageIdentifier

    source_sha = sha256_file(_model_file())
    stamp = folder / "source.sha256"
    if not stamp.is_file() or stamp.read_text() != source_sha:
        _write_mapped(folder, source_sha)
    arrays = {name: _map_npy(folder / f"{name}.npy") for name in _MAPPED}
    classes = json.loads((folder / "classes.json").read_text())
    return LanguageIdentifier(arrays["ptc"], np.asarray(arrays["pc"]), classes, arrays["nextmove"],
                              arrays["out_feat"], norm_probs=True, tk_row=arrays["nextmove_row"].tolist())  # fmt: skip


def _identifier():
    global _loaded
    with _lock:
        if _loaded is None:
            from py3langid.langid import MODEL_FILE, LanguageIdentifier

            _loaded = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
        return _loaded


def load(mapped_dir: Path | None = None) -> None:
    """Load the model now (a worker does it at startup, not on its first request); with `mapped_dir`, from
    memory-mapped copies kept there (written on first use)."""
    global _loaded
    with _lock:
        if _loaded is None and mapped_dir is not None:
            _loaded = _mapped_identifier(Path(mapped_dir))
    _identifier()


def rank(text: str, n: int = CANDIDATES) -> list[Detection]:
    """The `n` most likely languages of `text`; a text without letters has none."""
    if not _LETTER.search(text):
        return []
    return [Detection(lang, round(float(p) * 100.0, 2)) for lang, p in _identifier().rank(text)[:n]]


def source_language(text: str) -> Detection:
    """What `source: "auto"` decides for one text: English (with the identifier's probability for English)
    unless another language is at least REFUSE_CONFIDENCE likely, which is then returned."""
    ranked = rank(text, n=200)
    if not ranked:
        return Detection("en", 0.0)
    if ranked[0].language != "en" and ranked[0].confidence >= REFUSE_CONFIDENCE * 100.0:
        return ranked[0]
    return next((d for d in ranked if d.language == "en"), Detection("en", 0.0))
