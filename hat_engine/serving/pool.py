"""Loaded translators for serving: verified artifacts, a bounded LRU of loaded entries, text in and out.

An entry is served from the artifact for the chosen runtime: ONNX Runtime ("onnx", or "onnx-int8" when that is
the entry's only ONNX artifact) or torch ("torch"). `materialize` rebuilds it from the catalog's weights with both
sha256 checks, so an altered artifact raises CatalogError and is never loaded. Texts are split into sentences
(and overlong sentences into chunks that fit the model's positions), translated in length-sorted batches, and
joined again, so a paragraph comes back whole and no input is silently cut.
"""

from __future__ import annotations

import fcntl
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from hat_engine.catalog.materialize import materialize
from hat_engine.catalog.schema import Catalog, CatalogEntry
from hat_engine.data.tokenizer import Tokenizer
from hat_engine.errors import CatalogError
from hat_engine.model.decoding import beam_search_nbest, greedy_search

log = logging.getLogger(__name__)

BACKEND_FORMATS = {"onnxruntime": ("onnx", "onnx-int8"), "torch": ("torch",)}
MAX_SOURCE_TOKENS = 200  # the corpus' length filter: longer sentences are translated in chunks
BATCH_SENTENCES = 16
# Sentence ends (kept with the sentence) and line breaks (kept as separators).
_SPLIT = re.compile(r"(\s*\n\s*|(?<=[.!?])\s+)")


@dataclass(frozen=True)
class Translation:
    text: str
    tokens: int  # target tokens generated (the sum over the text's sentences)
    alternatives: tuple[str, ...] = ()  # other translations, distinct, best first (when asked for)


def artifact_format(entry: CatalogEntry, backend: str) -> str | None:
    """The artifact format this backend serves the entry from, or None when it has none."""
    formats = {a.format for a in entry.artifacts}
    return next((f for f in BACKEND_FORMATS[backend] if f in formats), None)


def split_sentences(text: str) -> tuple[list[str], list[str]]:
    """(sentences, separators) with len(separators) == len(sentences) - 1; line breaks survive, other runs of
    whitespace between sentences become one space."""
    parts = _SPLIT.split(text.strip())
    sentences, separators = parts[0::2], parts[1::2]
    separators = ["\n" * max(s.count("\n"), 1) if "\n" in s else " " for s in separators]
    return sentences, separators


@contextmanager
def cache_lock(cache_dir: Path) -> Iterator[None]:
    """An exclusive lock on the cache folder across processes: BentoML workers start together and would
    otherwise build the same entry into the same temporary folder at once."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    with open(cache_dir / ".lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class TranslatorPool:
    """Verified, loaded translators for one catalog, at most `max_loaded` at a time (least recently used out;
    pinned entries stay). Thread-safe; inference itself is the caller's to serialise."""

    def __init__(
        self, catalog_dir: Path, catalog: Catalog, cache_dir: Path, backend: str, threads: int, max_loaded: int = 3
    ):
        if backend not in BACKEND_FORMATS:
            raise CatalogError(f"backend {backend!r} is not servable; use one of {list(BACKEND_FORMATS)}")
        self.catalog_dir, self.catalog, self.cache_dir = Path(catalog_dir), catalog, Path(cache_dir)
        self.backend, self.threads, self.max_loaded = backend, threads, max(1, max_loaded)
        self._loaded: OrderedDict[str, object] = OrderedDict()
        self._pinned: set[str] = set()
        self._lock = threading.RLock()

    def verify(self, entry: CatalogEntry) -> Path:
        """Materialise (or re-check the cached) artifact; raises CatalogError when it is refused."""
        fmt = artifact_format(entry, self.backend)
        if fmt is None:
            raise CatalogError(f"entry {entry.id} has no artifact for {self.backend}")
        with cache_lock(self.cache_dir):
            return materialize(self.catalog_dir, self.catalog, entry, fmt, self.cache_dir)

    def load(self, entry: CatalogEntry):
        """The entry's translator (torch `Transformer` or `OrtTranslator`), loaded on first use."""
        with self._lock:
            if entry.id in self._loaded:
                self._loaded.move_to_end(entry.id)
                return self._loaded[entry.id]
            folder = self.verify(entry)
            fmt = artifact_format(entry, self.backend)
            if fmt == "torch":
                from hat_engine.model.transformer import Transformer

                model = Transformer.load(folder / "model.pt").eval()
            else:
                from hat_engine.runtime.ort_decoding import OrtTranslator

                model = OrtTranslator.load(folder, threads=self.threads, int8=fmt == "onnx-int8")
            self._loaded[entry.id] = model
            self._evict()
            log.info("loaded %s (%s, %d threads); %d loaded", entry.id, fmt, self.threads, len(self._loaded))
            return model

    def pin(self, entry_id: str) -> None:
        with self._lock:
            self._pinned = {entry_id}
            self._evict()

    def loaded_ids(self) -> list[str]:
        with self._lock:
            return list(self._loaded)

    def _evict(self) -> None:
        for key in list(self._loaded):
            if len(self._loaded) <= self.max_loaded:
                break
            if key not in self._pinned:
                del self._loaded[key]
                log.info("unloaded %s (LRU, max %d loaded)", key, self.max_loaded)


def translate_texts(
    model, tokenizer: Tokenizer, texts: list[str], beam: int = 4, alternatives: int = 0
) -> list[Translation]:
    """English texts -> German, sentence by sentence; empty or blank texts come back empty without decoding.

    With `alternatives` > 0, each text also gets up to that many other translations, distinct from the best and
    from each other: alternative j takes every sentence's j-th best hypothesis (its best where it has fewer).
    The beam then widens to 2 * (alternatives + 1), since hypotheses that differ in their tokens can still
    decode to the same text."""
    max_tokens = min(MAX_SOURCE_TOKENS, model.model_config.max_positions - 1)
    pieces: list[list[int]] = []  # token ids (with EOS) of each chunk, over all texts
    layout: list[tuple[list[list[int]], list[str]]] = []  # per text: chunk indices per sentence, separators
    for text in texts:
        sentences, separators = split_sentences(text) if text.strip() else ([], [])
        chunks_of = []
        for ids in tokenizer.encode(sentences) if sentences else []:
            chunks = [ids[i : i + max_tokens] for i in range(0, len(ids), max_tokens)] or [[]]
            chunks_of.append(list(range(len(pieces), len(pieces) + len(chunks))))
            pieces.extend(chunk + [tokenizer.eos_id] for chunk in chunks)
        layout.append((chunks_of, separators))
    width = max(beam, 2 * (alternatives + 1)) if alternatives > 0 else beam
    nbest = _decode(model, pieces, tokenizer.pad_id, width)
    texts_of = [[tokenizer.decode(hyp) for hyp in hyps] for hyps in nbest]  # per chunk, best first

    def join(chunks_of: list[list[int]], separators: list[str], rank: int) -> str:
        sentences = [" ".join(texts_of[i][min(rank, len(texts_of[i]) - 1)] for i in idx).strip() for idx in chunks_of]
        text = sentences[0] if sentences else ""
        for sep, sentence in zip(separators, sentences[1:], strict=True):
            text += sep + sentence
        return text

    out = []
    for chunks_of, separators in layout:
        best = join(chunks_of, separators, 0)
        others: list[str] = []
        for rank in range(1, width if alternatives > 0 else 1):
            candidate = join(chunks_of, separators, rank)
            if len(others) < alternatives and candidate and candidate != best and candidate not in others:
                others.append(candidate)
        tokens = sum(len(nbest[i][0]) + 1 for idx in chunks_of for i in idx)
        out.append(Translation(best, tokens, tuple(others)))
    return out


@torch.inference_mode()
def _decode(model, pieces: list[list[int]], pad_id: int, beam: int) -> list[list[list[int]]]:
    """Beam search over all chunks, batched by length; per chunk its hypotheses, best first, in input order."""
    hyps: list[list[list[int]]] = [[[]] for _ in pieces]
    order = sorted(range(len(pieces)), key=lambda i: len(pieces[i]))
    for start in range(0, len(order), BATCH_SENTENCES):
        rows = order[start : start + BATCH_SENTENCES]
        src = torch.full((len(rows), max(len(pieces[i]) for i in rows)), pad_id, dtype=torch.long)
        for r, i in enumerate(rows):
            src[r, : len(pieces[i])] = torch.tensor(pieces[i])
        if beam == 1:
            out = [[tokens] for tokens in greedy_search(model, src)]
        else:
            out = [[hyp.tokens for hyp in nbest] for nbest in beam_search_nbest(model, src, beam=beam)]
        for i, hyp in zip(rows, out, strict=True):
            hyps[i] = hyp
    return hyps
