"""Loaded translators for serving: verified artifacts, a bounded LRU of loaded entries, text in and out.

An entry is served from the artifact for the chosen runtime: ONNX Runtime ("onnx", or "onnx-int8" when that is
the entry's only ONNX artifact) or torch ("torch", listed or cut from the ONNX artifact's recipe: an int8-only
entry is served by torch from the same weights unquantised). `materialize` rebuilds it from the catalog's weights
with both sha256 checks, so an altered artifact raises CatalogError and is never loaded. Text goes in and out through
`model.translate.translate_texts`, the same path `hat supernet evaluate` and the catalog's scores take.
"""

from __future__ import annotations

import fcntl
import logging
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hat_engine.catalog.materialize import artifact_for, materialize, materialize_in_child
from hat_engine.catalog.schema import Catalog, CatalogEntry
from hat_engine.errors import CatalogError
from hat_engine.runtime.runners import ONNX_FORMATS, load_runner
from hat_engine.serving.heap import release_free_memory

log = logging.getLogger(__name__)

BACKEND_FORMATS = {"onnxruntime": ONNX_FORMATS, "torch": ("torch",)}


def artifact_format(entry: CatalogEntry, backend: str) -> str | None:
    """The artifact format this backend serves the entry from, or None when it has none (torch: also cut from
    an fp32 ONNX artifact's recipe, `materialize.artifact_for`)."""
    return next((f for f in BACKEND_FORMATS[backend] if artifact_for(entry, f) is not None), None)


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
        outcome = self.verify_all([entry])[entry.id]
        if isinstance(outcome, CatalogError):
            raise outcome
        return outcome

    def verify_all(self, entries: list[CatalogEntry]) -> dict[str, Path | CatalogError]:
        """`verify` for each entry, keyed by id: its folder, or the CatalogError refusing it. Serving ONNX, what
        is not cached is built in one child process, so this process never imports torch."""
        results: dict[str, Path | CatalogError] = {}
        wanted = []
        for entry in entries:
            fmt = artifact_format(entry, self.backend)
            if fmt is None:
                results[entry.id] = CatalogError(f"entry {entry.id} has no artifact for {self.backend}")
            else:
                wanted.append((entry, fmt))
        with cache_lock(self.cache_dir):
            if self.backend == "onnxruntime":
                return results | materialize_in_child(self.catalog_dir, self.catalog, wanted, self.cache_dir)
            for entry, fmt in wanted:
                try:
                    results[entry.id] = materialize(self.catalog_dir, self.catalog, entry, fmt, self.cache_dir)
                except CatalogError as exc:
                    results[entry.id] = exc
        return results

    def load(self, entry: CatalogEntry):
        """The entry's translator (torch `Transformer` or `OrtTranslator`), loaded on first use."""
        with self._lock:
            if entry.id in self._loaded:
                self._loaded.move_to_end(entry.id)
                return self._loaded[entry.id]
            folder = self.verify(entry)
            fmt = artifact_format(entry, self.backend)
            model = load_runner(folder, fmt, self.threads)
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
                release_free_memory()
                log.info("unloaded %s (LRU, max %d loaded)", key, self.max_loaded)
