"""The CTranslate2 peer holds exactly our homogeneous SubTransformer, and says what it cannot hold."""

import ctranslate2
import pytest
import torch

from harness.ct2 import check_equivalence, ct2_incompatibility, to_ctranslate2
from hat_engine.config import ArchConfig, DecoderLayerArch, EncoderLayerArch, ModelConfig
from hat_engine.model.transformer import Transformer


def _model(arch: ArchConfig, qkv_dim: int = 32) -> Transformer:
    torch.manual_seed(0)
    model = Transformer(arch, ModelConfig(vocab_size=40), qkv_dim)
    with torch.no_grad():  # LayerNorms away from the identity, so a swapped gamma/beta would show
        for module in model.modules():
            if isinstance(module, torch.nn.LayerNorm):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    return model.eval()


HOMOGENEOUS = ArchConfig(32, 32, (EncoderLayerArch(64, 4),) * 2, (DecoderLayerArch(64, 4, 4, 1),) * 2)


def test_homogeneous_model_gives_the_same_log_probs(tmp_path):
    model = _model(HOMOGENEOUS)
    pieces = ["<pad>", "<unk>", "<s>", "</s>"] + [f"p{i}" for i in range(36)]
    out = to_ctranslate2(model, pieces, tmp_path / "ct2")
    translator = ctranslate2.Translator(str(out), device="cpu", compute_type="float32", intra_threads=1)
    gen = torch.Generator().manual_seed(1)
    ids = [torch.randint(4, 40, (n,), generator=gen).tolist() + [3] for n in (3, 7, 12)]
    assert check_equivalence(model, translator, pieces, ids) < 1e-3


def test_converting_leaves_our_weights_alone(tmp_path):
    """The converter hands CTranslate2 copies: its int8 conversion once rewrote our model's tensors in place."""
    model = _model(HOMOGENEOUS)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    pieces = ["<pad>", "<unk>", "<s>", "</s>"] + [f"p{i}" for i in range(36)]
    for quantization in ("float32", "int8"):
        to_ctranslate2(model, pieces, tmp_path / quantization, quantization=quantization)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_what_the_peer_cannot_run_is_named():
    hetero = ArchConfig(32, 16, (EncoderLayerArch(64, 4), EncoderLayerArch(32, 2)),
                        (DecoderLayerArch(64, 4, 2, 2),))  # fmt: skip
    reasons = ct2_incompatibility(hetero, 32)
    assert len(reasons) == 4 and any("arbitrary enc-dec attention" in r for r in reasons)
    assert ct2_incompatibility(HOMOGENEOUS, 32) == []
    assert ct2_incompatibility(HOMOGENEOUS, 64)  # qkv width != embedding width
    with pytest.raises(ValueError, match="CTranslate2 cannot run"):
        to_ctranslate2(_model(hetero), ["x"] * 40, None)
