"""Fine-tuned weights as an int8 delta on their base: small, close to the whole weights, refused on a wrong base,
and served through the catalog's checksummed materialisation."""

import pytest
import torch

from hat_engine.catalog.extract import weights_sha256
from hat_engine.catalog.materialize import materialize
from hat_engine.catalog.schema import Artifact, Catalog, CatalogEntry, FileRef, HardwareProfileRecord, sha256_file
from hat_engine.errors import CatalogError, CheckpointError
from hat_engine.latency.timing import Workload
from hat_engine.model.delta import load_delta, load_weights, save_delta
from hat_engine.model.supernet import save_supernet
from hat_engine.runtime.ort_decoding import OrtTranslator


def _tuned(base):
    """A copy of `base` with a fine-tuning-sized change to every tensor but the embeddings."""
    model = type(base)(base.arch, base.model_config, base.qkv_dim)
    model.load_state_dict(base.state_dict())
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "embed" not in name:
                p.add_(torch.randn(p.shape, generator=gen) * 1e-3 * (p.abs().mean() + 1e-3))
    return model.eval()


def test_delta_is_small_close_and_tied_to_its_base(tiny_supernet, tiny_space, tmp_path):
    arch = tiny_space.largest()
    base = tiny_supernet.extract(arch)
    tuned = _tuned(base)
    counts = save_delta(tuned, base, tmp_path / "d.pt")
    tuned.save(tmp_path / "whole.pt", dtype=torch.float16)
    assert counts["unchanged_tensors"] >= 1 and counts["changed_tensors"] >= 10
    assert (tmp_path / "d.pt").stat().st_size < 0.75 * (tmp_path / "whole.pt").stat().st_size
    rebuilt = load_delta(tmp_path / "d.pt", base)
    for (key, want), got in zip(tuned.state_dict().items(), rebuilt.state_dict().values(), strict=True):
        step = (want - base.state_dict()[key]).abs().max()
        assert (got - want).abs().max() <= step / 127 + 1e-4 * step + 1e-7, key  # within half an int8 step
    assert weights_sha256(load_delta(tmp_path / "d.pt", base)) == weights_sha256(rebuilt)  # deterministic
    assert weights_sha256(load_weights(tmp_path / "whole.pt", lambda: pytest.fail("no base for a whole file")))
    assert weights_sha256(load_weights(tmp_path / "d.pt", lambda: base)) == weights_sha256(rebuilt)
    with pytest.raises(CheckpointError, match="is for arch"):
        load_delta(tmp_path / "d.pt", tiny_supernet.extract(tiny_space.smallest()))
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_weights(tmp_path / "junk.pt", lambda: base)


def test_a_delta_entry_materialises_checksummed(tiny_supernet, tiny_space, tmp_path):
    save_supernet(tmp_path / "supernet.pt", tiny_supernet, dtype=None)
    (tmp_path / "spm.model").write_bytes(b"tok")
    arch = tiny_space.largest()
    base = tiny_supernet.extract(arch)
    (tmp_path / "finetuned").mkdir()
    save_delta(_tuned(base), base, tmp_path / "finetuned/x.delta.pt")
    sha = weights_sha256(load_delta(tmp_path / "finetuned/x.delta.pt", base))
    recipe = {"source": "finetuned/x.delta.pt", "source_sha256": sha256_file(tmp_path / "finetuned/x.delta.pt")}
    entry = CatalogEntry("ft", "p", 10.0, arch, 1, {"p50": 1.0, "p95": 1.0}, 1.0, {}, {},
                         (Artifact("onnx", ".cache/ft/onnx", sha, recipe),))  # fmt: skip
    catalog = Catalog("en-de", FileRef("spm.model", sha256_file(tmp_path / "spm.model")),
                      FileRef("supernet.pt", sha256_file(tmp_path / "supernet.pt")), Workload(),
                      (HardwareProfileRecord("p", {}),), (entry,))  # fmt: skip
    folder = materialize(tmp_path, catalog, entry, "onnx", tmp_path / ".cache")
    assert OrtTranslator.load(folder).arch == arch
    # The base is part of what is checked: a supernet other than the catalog's is refused, not rebuilt on.
    torch.manual_seed(5)
    other = type(tiny_supernet)(tiny_space, tiny_supernet.model_config)
    save_supernet(tmp_path / "supernet.pt", other, dtype=None)
    with pytest.raises(CatalogError, match="does not match its sha256"):
        materialize(tmp_path, catalog, entry, "onnx", tmp_path / "c2")
