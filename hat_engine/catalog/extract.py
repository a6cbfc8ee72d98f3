"""A catalog entry's standalone model, cut from the catalog's weights with both sha256 checks (torch): what
`materialize` builds a served artifact from, and the checksum every artifact records."""

import hashlib
from pathlib import Path

import torch
from torch import nn

from hat_engine.catalog.schema import Artifact, Catalog, CatalogEntry, sha256_file
from hat_engine.errors import CatalogError
from hat_engine.model.delta import load_weights
from hat_engine.model.supernet import load_supernet
from hat_engine.model.transformer import Transformer


def weights_sha256(model: nn.Module) -> str:
    """A checksum of a model's weights (fp32 bytes, keys in sorted order): independent of the file format."""
    digest = hashlib.sha256()
    for key, tensor in sorted(model.state_dict().items()):
        digest.update(key.encode())
        digest.update(tensor.detach().to(torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()


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
