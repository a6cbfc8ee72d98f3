"""ONNX graphs of a SubTransformer (hat_engine.runtime.onnx_graph): valid graphs with the export signature, encoder
and decoder-step outputs equal to the torch model, search over ONNX Runtime (its in-place cache included)
token-identical to hat_engine.model.decoding, dynamic shapes, int8 graphs close to fp32, clear load errors.
"""

import dataclasses
import json
import random
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from hat_engine.config import ArchConfig, DecoderLayerArch, EncoderLayerArch, ModelConfig, SearchSpace
from hat_engine.errors import CheckpointError
from hat_engine.model.decoding import beam_search, greedy_search
from hat_engine.model.supernet import SuperTransformer
from hat_engine.runtime.onnx_export import quantize_export
from hat_engine.runtime.onnx_graph import BUILDER, build_onnx
from hat_engine.runtime.onnx_signature import signature, top_k
from hat_engine.runtime.ort_decoding import OrtStepper, OrtTranslator
from tests.unit.test_decoding import sharpen

# conftest's tiny space; module-scoped fixtures cannot use its function-scoped fixtures.
SPACE = SearchSpace((16, 32), (32, 64), (2, 4), (1, 2), (1, 2), (1, 2), qkv_dim=32)
# Mixed widths (encoder 32, decoder 16), per-layer FFN widths and head counts, cross_layers 2 and 1.
ARCH = ArchConfig(
    encoder_embed_dim=32,
    decoder_embed_dim=16,
    encoder_layers=(EncoderLayerArch(64, 4), EncoderLayerArch(32, 2)),
    decoder_layers=(DecoderLayerArch(32, 2, 4, 2), DecoderLayerArch(64, 4, 2, 1)),
)
# Seeds whose samples mix per-layer FFN widths and heads, encoder depths 1-2, cross_layers 1-2, and two decoder
# layers sharing one cross_layers value (one encoder memory feeding two graph outputs).
SAMPLE_SEEDS = (0, 4, 5)


def _supernet() -> SuperTransformer:
    torch.manual_seed(0)
    supernet = SuperTransformer(SPACE, ModelConfig(vocab_size=50, max_positions=64))
    sharpen(supernet)  # non-degenerate outputs from random weights
    return supernet


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """[(torch model, graph dir, translator)] for ARCH and three sampled archs."""
    supernet = _supernet()
    result = []
    for i, arch in enumerate([ARCH, *(SPACE.sample(random.Random(s)) for s in SAMPLE_SEEDS)]):
        model = supernet.extract(arch).eval()
        out_dir = tmp_path_factory.mktemp(f"graph{i}")
        paths = build_onnx(model, out_dir)
        assert all(path.is_file() for path in paths.values())
        result.append((model, out_dir, OrtTranslator.load(out_dir, threads=1)))
    return result


def _torch_cross(model, src: torch.Tensor) -> list[torch.Tensor]:
    """What the encoder graph should yield, from the torch model: per decoder layer cross K, V and the additive
    bias (0 at tokens, -inf at padding); a row of padding alone has bias 0 and zero V."""
    encoder_out, outputs = model.encode(src), []
    for layer, genes in zip(model.decoder_layers, model.arch.decoder_layers, strict=True):
        memory, mask = encoder_out.memory(genes.cross_layers)  # mask (N, 1, 1, c*S), True at tokens
        k, v = layer.cross_attn.project_kv(memory)
        empty = ~mask.any(dim=-1, keepdim=True)  # (N, 1, 1, 1)
        bias = torch.zeros(mask.shape).masked_fill(~(mask | empty), float("-inf"))
        outputs += [k, v.masked_fill(empty, 0.0), bias]
    return outputs


def test_the_sampled_archs_cover_the_shapes_that_matter():
    archs = [ARCH, *(SPACE.sample(random.Random(s)) for s in SAMPLE_SEEDS)]
    assert {la.cross_layers for a in archs for la in a.decoder_layers} == {1, 2}
    assert any(len({la.self_heads for la in a.decoder_layers}) > 1 for a in archs)


def test_graphs_are_valid_and_carry_the_export_signature(built):
    for model, out_dir, _ in built:
        names = signature(model.arch.decoder_depth)
        for part in ("encoder", "decoder"):
            graph = onnx.load(out_dir / f"{part}.onnx")
            onnx.checker.check_model(graph, full_check=True)
            assert [v.name for v in graph.graph.input] == names[part]["inputs"]
            assert [v.name for v in graph.graph.output] == names[part]["outputs"]
        meta = json.loads((out_dir / "export.json").read_text())
        assert meta["builder"] == BUILDER
        assert meta["signature"] == names and meta["qkv_dim"] == model.qkv_dim


@torch.no_grad()
def test_encoder_outputs_match_torch(built, random_batch):
    src = random_batch(3, 7, seed=1)
    src[2] = torch.cat([torch.zeros(3, dtype=torch.long), src[2, :4]])  # left-padded: positions skip padding
    src[1] = 0  # padding alone
    for model, _, translator in built:
        expected = _torch_cross(model, src)
        got = translator.encode(src.numpy()).cross
        assert list(got) == signature(model.arch.decoder_depth)["encoder"]["outputs"]
        for value, (key, ort_value) in zip(expected, got.items(), strict=True):
            assert ort_value.dtype == np.float32, key
            torch.testing.assert_close(torch.from_numpy(ort_value), value, rtol=0, atol=1e-4, msg=key)


def _step_both(model, translator, src, prev):
    """Run torch decode_step and the ORT graphs side by side over prev (B, T); yield both per step."""
    encoder_out, ort_encoder_out = model.encode(src), translator.encode(src.numpy())
    cache = ort_cache = None
    for step in range(prev.size(1)):
        logits, cache = model.decode_step(prev[:, step : step + 1], encoder_out, cache, step)
        ort_logits, ort_cache = translator.decode_step(prev[:, step : step + 1], ort_encoder_out, ort_cache, step)
        as_torch = {key: torch.from_numpy(value) for key, value in ort_cache.items()}
        yield (logits, cache), (torch.from_numpy(ort_logits), as_torch)


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
            # the graph's cross-attention tensors are the encoder's, checked above (the bias for torch's mask)
            assert {key.replace("cross_bias", "cross_mask") for key in ort_cache} == set(cache)
            for key in translator.self_cache_names:
                torch.testing.assert_close(ort_cache[key], cache[key], rtol=0, atol=1e-4, msg=key)


def test_beam_and_greedy_are_token_identical(built, random_batch):
    lengths = []
    for model, _, translator in built:
        for seed in range(3):
            src = random_batch(3, 7, seed=10 + seed)
            for beam in (4, 2):
                hyps = beam_search(model, src, beam=beam, max_len_a=1.0, max_len_b=3)
                assert translator.beam_search(src.numpy(), beam=beam, max_len_a=1.0, max_len_b=3) == hyps
                lengths += [len(hyp) for hyp in hyps]
            assert translator.beam_search(src, beam=4, length_penalty=0.6) == beam_search(
                model, src, beam=4, length_penalty=0.6
            )
            assert translator.greedy_search(src.numpy()) == greedy_search(model, src)
            for n in (2, 3):  # the repeat ban rules both back ends' candidates alike
                assert beam_search(translator, src.numpy(), beam=4, no_repeat_ngram=n) == beam_search(
                    model, src, beam=4, no_repeat_ngram=n
                )
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


@torch.no_grad()
def test_int8_graphs_run_close_to_fp32(built, random_batch):
    _, out_dir, translator = built[0]
    paths = quantize_export(out_dir)
    assert all(path.is_file() for path in paths.values())
    int8 = OrtTranslator.load(out_dir, threads=1, int8=True)
    src = random_batch(2, 6, seed=3)
    prev = torch.tensor([[2, 9, 17], [2, 30, 5]])
    encoder_out, int8_out = translator.encode(src), int8.encode(src)
    cache = int8_cache = None
    for step in range(prev.size(1)):
        logits, cache = translator.decode_step(prev[:, step : step + 1], encoder_out, cache, step)
        q_logits, int8_cache = int8.decode_step(prev[:, step : step + 1], int8_out, int8_cache, step)
        # Loose: int8 weights shift logits a little; the ranking must stay broadly the same. How far depends on
        # the host's int8 kernels (AVX2 without VNNI saturates u8 x s8 products: 0.984 on such a host, > 0.99 on
        # AMX/VNNI ones); a broken quantisation lands far below either.
        corr = np.corrcoef(logits.flatten(), q_logits.flatten())[0, 1]
        assert corr > 0.97, corr
    hyps = int8.beam_search(src, beam=4)
    assert len(hyps) == 2 and all(not {0, 2, 3} & set(hyp) for hyp in hyps)


def test_load_errors_name_the_fix(built, tmp_path):
    _, out_dir, _ = built[0]
    with pytest.raises(CheckpointError, match="build_onnx"):
        OrtTranslator.load(tmp_path)
    with pytest.raises(ValueError, match="use_cache=False"):
        greedy_search(OrtTranslator.load(out_dir), np.array([[5, 3]]), use_cache=False)


def test_the_search_appends_to_one_buffer_in_place_and_grows_it(built, random_batch, monkeypatch):
    """The stepper binds one buffer per layer as past and present: a step writes its position into the same
    array, a full buffer is copied into one of twice the room, and searches stay token-identical to torch's."""
    model, _, translator = built[0]
    monkeypatch.setattr(OrtStepper, "FIRST_CAPACITY", 2)
    src = random_batch(2, 5, seed=6)
    with translator.stepper(src.numpy(), np.repeat(np.arange(2), 3)) as stepper:
        tokens = np.full((6, 8), 7)
        stepper(tokens, 0, 6)
        buffer = stepper.cache["self_k.0"]
        before = buffer.copy()
        stepper(tokens, 1, 6)
        assert stepper.cache["self_k.0"] is buffer and buffer.shape[2] == 2
        np.testing.assert_array_equal(buffer[:, :, 0], before[:, :, 0])  # filled positions stay
        assert not np.array_equal(buffer[:, :, 1], before[:, :, 1])  # the step wrote its own
        stepper(tokens, 2, 6)
        assert stepper.cache["self_k.0"].shape[2] == 4 and stepper.filled == 3
        np.testing.assert_array_equal(stepper.cache["self_k.0"][:, :, :2], buffer)
    for seed in range(3):
        src = random_batch(3, 9, seed=20 + seed)
        assert translator.beam_search(src.numpy(), beam=4) == beam_search(model, src, beam=4)


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


@torch.no_grad()
def test_decoder_graph_ranks_the_likeliest_tokens(built, random_batch):
    """The step graph's TopK over log-softmax: the torch model's k best tokens and log-probs, best first."""
    src = random_batch(3, 6, seed=5)
    prev = torch.tensor([[2, 9, 17], [2, 30, 5], [2, 4, 4]])
    for model, _, translator in built:
        encoder_out, ort_encoder_out = model.encode(src), translator.encode(src.numpy())
        cache = ort_cache = None
        for step in range(prev.size(1)):
            logits, cache = model.decode_step(prev[:, step : step + 1], encoder_out, cache, step)
            k = (top_k(model.model_config.vocab_size), 11, 1)[step]  # the most a search asks, a beam of 4's, greedy
            (lprobs, ids), ort_cache = translator.decode_step(
                prev[:, step : step + 1], ort_encoder_out, ort_cache, step, top=k
            )
            assert lprobs.shape == ids.shape == (3, k) and ids.dtype == np.int64
            expected = torch.log_softmax(logits, dim=-1)
            assert (np.diff(lprobs, axis=1) <= 0).all()  # best first
            np.testing.assert_allclose(lprobs, expected.gather(1, torch.from_numpy(ids)).numpy(), atol=1e-4)
            np.testing.assert_allclose(lprobs, expected.topk(lprobs.shape[1]).values.numpy(), atol=1e-4)


def test_both_graphs_share_one_embedding_table_where_the_widths_match(tmp_path, random_batch):
    """Encoder and decoder of equal width hold one position table, and one token table where sqrt(width) is a
    power of two (int8 quantises it exactly as the pre-scaled table then): written once beside the graphs (fp32
    and int8) and handed to both sessions, with the same outputs as each graph loading its own copy."""
    torch.manual_seed(0)
    supernet = SuperTransformer(SPACE, ModelConfig(vocab_size=200, max_positions=64))  # int8 tables >= 1 KB
    sharpen(supernet)
    w16, w32 = dataclasses.replace(ARCH, encoder_embed_dim=16), dataclasses.replace(ARCH, decoder_embed_dim=32)
    src, prev = random_batch(2, 6, seed=5), np.array([[2], [2]])
    cases = ((w16, {"embed_tokens", "positions"}), (w32, {"positions"}), (ARCH, set()))  # ARCH: 32 / 16 wide
    for i, (arch, expected) in enumerate(cases):
        out_dir = tmp_path / str(i)
        build_onnx(supernet.extract(arch).eval(), out_dir)
        quantize_export(out_dir)
        meta = json.loads((out_dir / "export.json").read_text())
        assert set(meta["shared"]) == expected
        assert set(meta["shared_int8"]) == {f"{name}_quantized" for name in expected}
        for int8, files in ((False, meta["files"]), (True, meta["files_int8"])):
            shared = OrtTranslator.load(out_dir, threads=1, int8=int8)
            assert len(shared._shared) == len(expected)
            own = OrtTranslator(out_dir / files["encoder"], out_dir / files["decoder"], arch, shared.model_config,
                                shared.qkv_dim, 1)  # fmt: skip
            logits = [t.decode_step(prev, t.encode(src), None, 0)[0] for t in (shared, own)]
            np.testing.assert_array_equal(logits[0], logits[1])
            assert shared.beam_search(src, beam=4) == own.beam_search(src, beam=4)
