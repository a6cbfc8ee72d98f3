"""Directly built ONNX graphs (hat_engine.runtime.onnx_graph): the same signature and export.json as the dynamo export,
outputs equal to the torch model, and search over them token-identical to hat_engine.model.decoding.

Building takes milliseconds, so every architecture gets its own graphs; the tests that export with dynamo or
build the largest default architecture are marked `integration`.
"""

import json
import random
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from hat_engine.config import ModelConfig, SearchSpace
from hat_engine.model.decoding import beam_search, greedy_search
from hat_engine.model.supernet import SuperTransformer
from hat_engine.runtime.onnx_export import EncoderGraph, export_onnx, quantize_export, signature
from hat_engine.runtime.onnx_graph import BUILDER, build_onnx
from hat_engine.runtime.ort_decoding import OrtTranslator
from tests.unit.test_decoding import sharpen
from tests.unit.test_onnx import ARCH

# conftest's tiny space; module-scoped fixtures cannot use its function-scoped fixtures.
SPACE = SearchSpace((16, 32), (32, 64), (2, 4), (1, 2), (1, 2), (1, 2), qkv_dim=32)
# Seeds whose samples mix per-layer FFN widths and heads, encoder depths 1-2, cross_layers 1-2, and two decoder
# layers sharing one cross_layers value (one encoder memory feeding two graph outputs).
SAMPLE_SEEDS = (0, 4, 5)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """[(torch model, export dir, translator)] for ARCH and three sampled archs."""
    torch.manual_seed(0)
    supernet = SuperTransformer(SPACE, ModelConfig(vocab_size=50, max_positions=64))
    sharpen(supernet)  # non-degenerate outputs from random weights
    archs = [ARCH, *(SPACE.sample(random.Random(seed)) for seed in SAMPLE_SEEDS)]
    assert {la.cross_layers for a in archs for la in a.decoder_layers} == {1, 2}
    assert any(len({la.self_heads for la in a.decoder_layers}) > 1 for a in archs)
    result = []
    for i, arch in enumerate(archs):
        model = supernet.extract(arch).eval()
        out_dir = tmp_path_factory.mktemp(f"graph{i}")
        paths = build_onnx(model, out_dir)
        assert all(path.is_file() for path in paths.values())
        result.append((model, out_dir, OrtTranslator.load(out_dir, threads=1)))
    return result


def _io(graph: onnx.GraphProto) -> list[tuple[str, int, list]]:
    """(name, element type, dims) of every input and output of an onnx graph."""
    values = [*graph.input, *graph.output]
    return [
        (v.name, v.type.tensor_type.elem_type, [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim])
        for v in values
    ]


def test_graphs_are_valid_and_carry_the_export_signature(built):
    for model, out_dir, _ in built:
        names = signature(model.arch.decoder_depth)
        for part in ("encoder", "decoder"):
            graph = onnx.load(out_dir / f"{part}.onnx")
            onnx.checker.check_model(graph, full_check=True)
            assert [v.name for v in graph.graph.input] == names[part]["inputs"]
            assert [v.name for v in graph.graph.output] == names[part]["outputs"]
        meta = json.loads((out_dir / "export.json").read_text())
        assert meta["builder"] == BUILDER and meta["signature"] == names and meta["qkv_dim"] == model.qkv_dim


@torch.no_grad()
def test_encoder_outputs_match_torch(built, random_batch):
    src = random_batch(3, 7, seed=1)
    src[2] = torch.cat([torch.zeros(3, dtype=torch.long), src[2, :4]])  # left-padded: positions skip padding
    for model, _, translator in built:
        expected = EncoderGraph(model)(src)
        got = translator.encode(src.numpy()).cross
        assert list(got) == signature(model.arch.decoder_depth)["encoder"]["outputs"]
        for value, (key, ort_value) in zip(expected, got.items(), strict=True):
            assert ort_value.dtype == (np.bool_ if key.startswith("cross_mask") else np.float32), key
            torch.testing.assert_close(torch.from_numpy(ort_value), value, rtol=0, atol=1e-4, msg=key)


def _step_both(model, translator, src, prev):
    """Run torch decode_step and the ORT graphs side by side over prev (B, T); yield both per step."""
    encoder_out, ort_encoder_out = model.encode(src), translator.encode(src.numpy())
    cache = ort_cache = None
    for step in range(prev.size(1)):
        logits, cache = model.decode_step(prev[:, step : step + 1], encoder_out, cache, step)
        ort_logits, ort_cache = translator.decode_step(prev[:, step : step + 1], ort_encoder_out, ort_cache, step)
        yield (logits, cache), (ort_logits, ort_cache)


@torch.no_grad()
def test_step_logits_and_cache_match_torch(built, random_batch):
    src = random_batch(3, 6, seed=1)
    src[1, 4:] = 0  # a right-padded row
    src[2] = 0  # an empty row: attention over no keys gives zeros, as torch's SDPA does
    prev = random_batch(3, 5, seed=2).clamp(min=4)
    prev[:, 0] = 2
    for model, _, translator in built:
        for (logits, cache), (ort_logits, ort_cache) in _step_both(model, translator, src, prev):
            assert torch.isfinite(ort_logits).all()
            torch.testing.assert_close(ort_logits, logits, rtol=0, atol=1e-4)
            assert set(ort_cache) == set(cache)
            for key, value in cache.items():
                torch.testing.assert_close(ort_cache[key], value, rtol=0, atol=1e-4, msg=key)


def test_beam_and_greedy_are_token_identical(built, random_batch):
    lengths = []
    for model, _, translator in built:
        for seed in range(3):
            src = random_batch(3, 7, seed=10 + seed)
            hyps = beam_search(model, src, beam=4)
            assert translator.beam_search(src.numpy(), beam=4) == hyps
            assert translator.beam_search(src, beam=4, length_penalty=0.6) == beam_search(
                model, src, beam=4, length_penalty=0.6
            )
            assert translator.greedy_search(src.numpy()) == greedy_search(model, src)
            lengths += [len(hyp) for hyp in hyps]
    assert min(lengths) < max(lengths)  # some hypotheses ended with EOS before the length limit


@torch.no_grad()
def test_dynamic_batch_and_lengths(built, random_batch):
    model, _, translator = built[0]
    assert [i.shape for i in translator.encoder.get_inputs()] == [["batch", "src_len"]]
    for batch, length in ((1, 1), (1, 4), (5, 11)):
        src = random_batch(batch, length, seed=length)
        prev = torch.full((batch, 3), 7)
        for (logits, cache), (ort_logits, ort_cache) in _step_both(model, translator, src, prev):
            assert ort_logits.shape == (batch, 50)
            torch.testing.assert_close(ort_logits, logits, rtol=0, atol=1e-4)
            assert ort_cache["self_k.0"].shape == cache["self_k.0"].shape
        assert translator.beam_search(src, beam=3) == beam_search(model, src, beam=3)


def test_int8_quantization_of_built_graphs(built, tmp_path, random_batch):
    model = built[0][0]
    build_onnx(model, tmp_path)
    quantize_export(tmp_path)
    int8 = OrtTranslator.load(tmp_path, threads=1, int8=True)
    hyps = int8.beam_search(random_batch(2, 6, seed=3), beam=4)
    assert len(hyps) == 2 and all(not {0, 2, 3} & set(hyp) for hyp in hyps)


@pytest.mark.integration
@torch.no_grad()
def test_same_graph_interface_and_outputs_as_dynamo_export(built, tmp_path, random_batch):
    model, built_dir, translator = built[0]
    export_onnx(model, tmp_path)
    for part in ("encoder", "decoder"):
        assert _io(onnx.load(built_dir / f"{part}.onnx").graph) == _io(onnx.load(tmp_path / f"{part}.onnx").graph)
    dynamo_meta = json.loads((tmp_path / "export.json").read_text())
    built_meta = json.loads((built_dir / "export.json").read_text())
    assert dynamo_meta["builder"] == "dynamo" and built_meta["builder"] == BUILDER
    for key in ("format", "arch", "model_config", "qkv_dim", "files", "signature"):
        assert built_meta[key] == dynamo_meta[key], key
    dynamo = OrtTranslator.load(tmp_path, threads=1)
    src = random_batch(3, 8, seed=4)
    prev = torch.tensor([[2, 9, 17, 5], [2, 30, 5, 5], [2, 4, 4, 4]])
    for (logits, _), (ort_logits, _) in _step_both(dynamo, translator, src, prev):
        torch.testing.assert_close(ort_logits, logits, rtol=0, atol=1e-4)
    assert translator.beam_search(src, beam=4) == dynamo.beam_search(src, beam=4)


@pytest.mark.integration
@torch.no_grad()
def test_largest_default_arch_builds_and_matches_torch(tmp_path, random_batch):
    """The default space's largest arch (timing is no test: `bench/` measures speed; this checks the graph)."""
    space = SearchSpace.from_yaml((Path(__file__).parents[2] / "configs" / "space.yaml").read_text())
    torch.manual_seed(0)
    model = SuperTransformer(space, ModelConfig(vocab_size=8000)).extract(space.largest()).eval()
    build_onnx(model, tmp_path)
    translator = OrtTranslator.load(tmp_path, threads=1)
    src = random_batch(2, 9, vocab=8000, seed=5)
    prev = torch.tensor([[2, 900, 17], [2, 3000, 5]])
    for (logits, _), (ort_logits, _) in _step_both(model, translator, src, prev):
        torch.testing.assert_close(ort_logits, logits, rtol=0, atol=1e-4)
