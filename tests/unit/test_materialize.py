"""Materialising catalog entries from the SuperTransformer: verified, cached, refused when altered."""

import json
from dataclasses import replace

import pytest

from hat_engine.catalog.extract import weights_sha256
from hat_engine.catalog.materialize import materialize, materialize_in_child
from hat_engine.catalog.schema import (
    Artifact,
    Catalog,
    CatalogEntry,
    CatalogError,
    FileRef,
    HardwareProfileRecord,
    sha256_file,
)
from hat_engine.latency.timing import Workload
from hat_engine.model.supernet import save_supernet
from hat_engine.runtime.onnx_signature import ONNX_FORMAT
from hat_engine.runtime.ort_decoding import OrtTranslator


@pytest.fixture
def catalog(tiny_supernet, tiny_space, tmp_path):
    save_supernet(tmp_path / "supernet.pt", tiny_supernet, dtype=None)
    (tmp_path / "spm.model").write_bytes(b"tok")
    arch = tiny_space.smallest()
    sha = weights_sha256(tiny_supernet.extract(arch))
    recipe = {"source": "supernet.pt", "source_sha256": sha256_file(tmp_path / "supernet.pt")}
    artifacts = tuple(Artifact(fmt, f".cache/e1/{fmt}", sha, recipe) for fmt in ("onnx", "torch"))
    entry = CatalogEntry("e1", "p", 10.0, arch, 1, {"p50": 1.0, "p95": 1.0}, 1.0, {}, {}, artifacts)
    return Catalog("en-de", FileRef("spm.model", sha256_file(tmp_path / "spm.model")),
                   FileRef("supernet.pt", sha256_file(tmp_path / "supernet.pt")), Workload(),
                   (HardwareProfileRecord("p", {}),), (entry,))  # fmt: skip


def test_materialize_builds_once_and_matches(catalog, tiny_supernet, tiny_space, tmp_path):
    entry = catalog.entries[0]
    folder = materialize(tmp_path, catalog, entry, "onnx", tmp_path / ".cache")
    stamp = (folder / "materialized.json").stat().st_mtime_ns
    assert materialize(tmp_path, catalog, entry, "onnx", tmp_path / ".cache") == folder
    assert (folder / "materialized.json").stat().st_mtime_ns == stamp  # cached: nothing rebuilt
    translator = OrtTranslator.load(folder)
    assert translator.arch == tiny_space.smallest()
    (folder / "decoder.onnx").write_bytes(b"corrupt")  # a damaged cache is rebuilt, not served
    materialize(tmp_path, catalog, entry, "onnx", tmp_path / ".cache")
    OrtTranslator.load(folder)
    stamp_path = folder / "materialized.json"
    recorded = json.loads(stamp_path.read_text())
    stamp_path.write_text(json.dumps({**recorded, "onnx_format": "hat_engine.onnx/1"}))  # graphs of older code
    materialize(tmp_path, catalog, entry, "onnx", tmp_path / ".cache")
    assert json.loads(stamp_path.read_text())["onnx_format"] == ONNX_FORMAT  # rebuilt in this code's format
    torch_dir = materialize(tmp_path, catalog, entry, "torch", tmp_path / ".cache")
    assert (torch_dir / "model.pt").is_file()


def test_altered_source_or_wrong_weights_are_refused(catalog, tmp_path):
    entry = catalog.entries[0]
    bad_sha = Artifact("onnx", "x", "0" * 64, entry.artifacts[0].materialize)
    with pytest.raises(CatalogError, match="extracted weights"):
        materialize(
            tmp_path, catalog, CatalogEntry(**{**entry.__dict__, "artifacts": (bad_sha,)}), "onnx", tmp_path / "c"
        )
    with pytest.raises(CatalogError, match="no 'onnx-int8' artifact"):
        materialize(tmp_path, catalog, entry, "onnx-int8", tmp_path / "c")
    data = bytearray((tmp_path / "supernet.pt").read_bytes())
    data[-100] ^= 0xFF
    (tmp_path / "supernet.pt").write_bytes(bytes(data))
    with pytest.raises(CatalogError, match="refused"):
        materialize(tmp_path, catalog, entry, "onnx", tmp_path / "c2")


def test_a_child_process_builds_and_refuses_as_this_one_would(catalog, tmp_path):
    """materialize_in_child: one child builds every stale artifact; a refusal comes back as the same message."""
    entry = catalog.entries[0]
    bad = CatalogEntry(**{**entry.__dict__, "id": "bad",
                          "artifacts": (Artifact("onnx", "x", "0" * 64, entry.artifacts[0].materialize),)})  # fmt: skip
    two = replace(catalog, entries=(entry, bad))
    out = materialize_in_child(tmp_path, two, [(entry, "onnx"), (bad, "onnx")], tmp_path / ".cache")
    assert out[entry.id] == tmp_path / ".cache" / entry.id / "onnx" and OrtTranslator.load(out[entry.id])
    assert isinstance(out["bad"], CatalogError) and "extracted weights" in str(out["bad"])
    stamp = (out[entry.id] / "materialized.json").stat().st_mtime_ns
    again = materialize_in_child(tmp_path, two, [(entry, "onnx")], tmp_path / ".cache")  # cached: no child
    assert again == {entry.id: out[entry.id]} and (out[entry.id] / "materialized.json").stat().st_mtime_ns == stamp


def test_torch_artifact_is_cut_from_the_onnx_recipe_int8_too(catalog, tiny_supernet, tiny_space, tmp_path):
    from hat_engine.catalog.materialize import artifact_for
    from hat_engine.model.transformer import Transformer
    from hat_engine.serving.pool import artifact_format

    entry = catalog.entries[0]
    onnx_only = CatalogEntry(**{**entry.__dict__, "artifacts": entry.artifacts[:1]})
    assert artifact_format(onnx_only, "torch") == "torch"
    folder = materialize(tmp_path, catalog, onnx_only, "torch", tmp_path / ".cache")
    model = Transformer.load(folder / "model.pt")
    assert model.arch == tiny_space.smallest() and weights_sha256(model) == entry.artifacts[0].sha256
    int8 = Artifact("onnx-int8", ".cache/e1/onnx-int8", entry.artifacts[0].sha256, entry.artifacts[0].materialize)
    int8_only = CatalogEntry(**{**entry.__dict__, "id": "e1-int8", "artifacts": (int8,)})
    assert artifact_for(int8_only, "torch").sha256 == int8.sha256 and artifact_format(int8_only, "torch") == "torch"
    unquantised = Transformer.load(materialize(tmp_path, catalog, int8_only, "torch", tmp_path / ".cache") / "model.pt")
    assert weights_sha256(unquantised) == weights_sha256(model)  # the same weights as the fp32 twin's
    no_recipe = CatalogEntry(**{**entry.__dict__, "artifacts": (Artifact("onnx-int8", ".cache/x", int8.sha256, None),)})
    with pytest.raises(CatalogError, match="no 'torch' artifact"):
        materialize(tmp_path, catalog, no_recipe, "torch", tmp_path / ".cache")
