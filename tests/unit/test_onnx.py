"""ONNX export: the ORT encoder + decoder-step graphs compute what the torch model computes, and search over
ONNX Runtime returns the very tokens that hat_engine.model.decoding returns on the torch model.

Dynamo export takes seconds, so one module-scoped export serves every test.
"""

import numpy as np
import pytest
import torch

from hat_engine.config import ArchConfig, DecoderLayerArch, EncoderLayerArch, ModelConfig, SearchSpace
from hat_engine.errors import CheckpointError
from hat_engine.model import transformer
from hat_engine.model.decoding import beam_search, greedy_search
from hat_engine.model.supernet import SuperTransformer
from hat_engine.runtime.onnx_export import export_onnx, quantize_export
from hat_engine.runtime.ort_decoding import OrtTranslator
from tests.unit.test_decoding import sharpen

# Mixed widths (encoder 32, decoder 16), per-layer FFN widths and head counts, cross_layers 2 and 1.
ARCH = ArchConfig(
    encoder_embed_dim=32,
    decoder_embed_dim=16,
    encoder_layers=(EncoderLayerArch(64, 4), EncoderLayerArch(32, 2)),
    decoder_layers=(DecoderLayerArch(32, 2, 4, 2), DecoderLayerArch(64, 4, 2, 1)),
)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(torch model, export dir, fp32 translator), exported once."""
    # conftest's tiny space; a module-scoped fixture cannot use its function-scoped fixtures.
    space = SearchSpace((16, 32), (32, 64), (2, 4), (1, 2), (1, 2), (1, 2), qkv_dim=32)
    torch.manual_seed(0)
    supernet = SuperTransformer(space, ModelConfig(vocab_size=50, max_positions=64))
    sharpen(supernet)  # non-degenerate outputs from random weights
    model = supernet.extract(ARCH)
    # With the position-table cache empty, the export makes the first call: it must not cache a fake tensor.
    transformer._POSITION_TABLES.clear()
    out_dir = tmp_path_factory.mktemp("onnx")
    paths = export_onnx(model.train(), out_dir)
    assert all(path.is_file() for path in paths.values())
    assert model.training  # export works on an eval copy
    return model.eval(), out_dir, OrtTranslator.load(out_dir, threads=1)


def _step_both(model, translator, src, prev):
    """Run torch decode_step and the ORT graphs side by side over prev (B, T); yield both per step."""
    encoder_out, ort_encoder_out = model.encode(src), translator.encode(src.numpy())
    cache = ort_cache = None
    for step in range(prev.size(1)):
        logits, cache = model.decode_step(prev[:, step : step + 1], encoder_out, cache, step)
        ort_logits, ort_cache = translator.decode_step(prev[:, step : step + 1], ort_encoder_out, ort_cache, step)
        yield (logits, cache), (ort_logits, ort_cache)


@torch.no_grad()
def test_step_logits_and_cache_match_torch(exported, random_batch):
    model, _, translator = exported
    src = random_batch(2, 6, seed=1)
    src[1, 4:] = 0  # a padded row
    prev = random_batch(2, 5, seed=2).clamp(min=4)
    prev[:, 0] = 2
    for (logits, cache), (ort_logits, ort_cache) in _step_both(model, translator, src, prev):
        torch.testing.assert_close(ort_logits, logits, rtol=0, atol=1e-4)
        assert set(ort_cache) == set(cache)
        for key, value in cache.items():
            torch.testing.assert_close(ort_cache[key], value, rtol=0, atol=1e-4)


def test_beam_and_greedy_are_token_identical(exported, random_batch):
    model, _, translator = exported
    lengths = []
    for seed in range(4):
        src = random_batch(3, 7, seed=10 + seed)
        for beam in (4, 2):
            hyps = beam_search(model, src, beam=beam, max_len_a=1.0, max_len_b=3)
            assert translator.beam_search(src.numpy(), beam=beam, max_len_a=1.0, max_len_b=3) == hyps
            lengths += [len(hyp) for hyp in hyps]
        assert translator.beam_search(src.numpy(), beam=4, length_penalty=0.6) == beam_search(
            model, src, beam=4, length_penalty=0.6
        )
        assert translator.greedy_search(src.numpy()) == greedy_search(model, src)
    assert min(lengths) < max(lengths)  # some hypotheses ended with EOS before the length limit


@torch.no_grad()
def test_dynamic_batch_and_lengths(exported, random_batch):
    model, _, translator = exported
    assert [i.shape for i in translator.encoder.get_inputs()] == [["batch", "src_len"]]
    for batch, length in ((1, 4), (3, 11)):
        src = random_batch(batch, length, seed=length)
        prev = torch.full((batch, 3), 7)
        for (logits, _), (ort_logits, _) in _step_both(model, translator, src, prev):
            assert ort_logits.shape == (batch, 50)
            torch.testing.assert_close(ort_logits, logits, rtol=0, atol=1e-4)
        assert translator.beam_search(src, beam=3) == beam_search(model, src, beam=3)


@torch.no_grad()
def test_int8_graphs_run_close_to_fp32(exported, random_batch):
    model, out_dir, translator = exported
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
        corr = np.corrcoef(logits.flatten().numpy(), q_logits.flatten().numpy())[0, 1]
        assert corr > 0.97, corr
    hyps = int8.beam_search(src, beam=4)
    assert len(hyps) == 2 and all(not {0, 2, 3} & set(hyp) for hyp in hyps)


def test_load_errors_name_the_fix(exported, tmp_path):
    _, out_dir, _ = exported
    with pytest.raises(CheckpointError, match="export_onnx"):
        OrtTranslator.load(tmp_path)
    with pytest.raises(ValueError, match="cannot train"):
        OrtTranslator.load(out_dir).train()
