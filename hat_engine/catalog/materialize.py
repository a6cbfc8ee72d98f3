"""Materialise catalog entries: rebuild a served artifact from the catalog's weights, verified by sha256.

Entries cut from one SuperTransformer share its weights, so the catalog stores the SuperTransformer once (plus
any fine-tuned weights) and each entry records how to rebuild its artifact (CONTRACT §3): the source weights
and their sha256, the arch, and the sha256 of the extracted weights. Building checks both hashes, so an altered
or corrupted source is refused rather than served; a cache folder whose files no longer match the stamp written
when it was built is rebuilt.
"""

import hashlib
import json
import logging
import shutil
import tempfile
from pathlib import Path

import torch
from torch import nn

from hat_engine.catalog.schema import Artifact, Catalog, CatalogEntry, sha256_file
from hat_engine.errors import CatalogError
from hat_engine.model.delta import load_weights
from hat_engine.model.supernet import load_supernet
from hat_engine.model.transformer import Transformer

log = logging.getLogger(__name__)

STAMP = "materialized.json"


def weights_sha256(model: nn.Module) -> str:
    """A checksum of a model's weights (fp32 bytes, keys in sorted order): independent of the file format."""
    digest = hashlib.sha256()
    for key, tensor in sorted(model.state_dict().items()):
        digest.update(key.encode())
        digest.update(tensor.detach().to(torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()


def _dir_files(folder: Path) -> dict[str, str]:
    return {p.name: sha256_file(p) for p in sorted(folder.iterdir()) if p.is_file() and p.name != STAMP}


def _cache_ok(folder: Path, weights_sha: str, arch_id: str) -> bool:
    """The folder was built for these weights and this arch (head counts change no weights) and is intact."""
    stamp = folder / STAMP
    if not stamp.is_file():
        return False
    try:
        recorded = json.loads(stamp.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return (recorded.get("weights_sha256") == weights_sha and recorded.get("arch_id") == arch_id
            and recorded.get("files") == _dir_files(folder))  # fmt: skip


def _verified_supernet(catalog_dir: Path, catalog: Catalog, entry: CatalogEntry):
    """The catalog's SuperTransformer, checksummed: the base a fine-tuning delta is rebuilt on."""
    path = Path(catalog_dir) / catalog.supernet.path
    if not path.is_file() or sha256_file(path) != catalog.supernet.sha256:
        raise CatalogError(f"entry {entry.id}: its delta's base {path} is missing or does not match its sha256")
    return load_supernet(path)[0]


def extract_verified(catalog_dir: Path, catalog: Catalog, entry: CatalogEntry, artifact: Artifact) -> Transformer:
    """The entry's standalone model, from the supernet or from its own fine-tuned weights (whole, or a delta on
    the supernet's extraction: `model.delta`), all checksummed."""
    recipe = artifact.materialize or {}
    source = recipe.get("source", catalog.supernet.path)
    source_path = Path(catalog_dir) / source
    if not source_path.is_file():
        raise CatalogError(f"entry {entry.id}: source weights {source_path} are missing")
    expected_source = recipe.get("source_sha256", catalog.supernet.sha256)
    if sha256_file(source_path) != expected_source:
        raise CatalogError(f"entry {entry.id}: {source_path} does not match its sha256 in the catalog; refused")
    if source == catalog.supernet.path:
        supernet, _ = load_supernet(source_path)
        model = supernet.extract(entry.arch)
    else:
        model = load_weights(source_path, lambda: _verified_supernet(catalog_dir, catalog, entry).extract(entry.arch))
        if model.arch != entry.arch:
            raise CatalogError(f"entry {entry.id}: {source_path} holds another arch than the entry's")
    actual = weights_sha256(model)
    if actual != artifact.sha256:
        raise CatalogError(
            f"entry {entry.id}: extracted weights have sha256 {actual[:12]}…, the catalog says "
            f"{artifact.sha256[:12]}…; refused"
        )
    return model.eval()


def artifact_for(entry: CatalogEntry, fmt: str) -> Artifact | None:
    """The entry's artifact of format `fmt`. A torch artifact the catalog does not list is cut from the recipe of
    its fp32 ONNX artifact: the same weights (the checksum is format-independent), another runtime. An int8
    artifact has no torch twin: its weights are quantized in the graph."""
    found = next((a for a in entry.artifacts if a.format == fmt), None)
    if found is None and fmt == "torch":
        onnx = next((a for a in entry.artifacts if a.format == "onnx" and a.materialize is not None), None)
        if onnx is not None:
            found = Artifact("torch", f"{Path(onnx.path).parent}/torch", onnx.sha256, onnx.materialize)
    return found


def materialize(catalog_dir: Path, catalog: Catalog, entry: CatalogEntry, fmt: str, cache_dir: Path) -> Path:
    """The folder holding the entry's artifact of format `fmt` (ONNX export or torch file), built on first use."""
    artifact = artifact_for(entry, fmt)
    if artifact is None:
        raise CatalogError(f"entry {entry.id} has no {fmt!r} artifact; it has {[a.format for a in entry.artifacts]}")
    folder = Path(cache_dir) / entry.id / fmt
    arch_id = entry.arch.arch_id()
    if _cache_ok(folder, artifact.sha256, arch_id):
        return folder
    model = extract_verified(catalog_dir, catalog, entry, artifact)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{fmt}-", dir=folder.parent))  # unique: workers may build at once
    if fmt == "torch":
        model.save(tmp / "model.pt")
    else:
        from hat_engine.runtime.onnx_export import quantize_export
        from hat_engine.runtime.onnx_graph import build_onnx

        build_onnx(model, tmp)
        if fmt == "onnx-int8":
            quantize_export(tmp)
    (tmp / STAMP).write_text(json.dumps({"entry": entry.id, "weights_sha256": artifact.sha256, "arch_id": arch_id,
                                         "files": _dir_files(tmp)}, indent=2))  # fmt: skip
    if _cache_ok(folder, artifact.sha256, arch_id):  # another process finished first: keep its build
        shutil.rmtree(tmp, ignore_errors=True)
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    tmp.replace(folder)
    log.info("materialised %s (%s) into %s", entry.id, fmt, folder)
    return folder
