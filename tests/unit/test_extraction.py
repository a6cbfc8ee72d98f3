"""The key invariant: an extracted SubTransformer computes what the supernet computes under set_active."""

import random

import pytest
import torch

from hat_engine.config import ArchConfig, DecoderLayerArch, EncoderLayerArch, SearchSpace
from hat_engine.errors import InvalidArchError
from hat_engine.model.supernet import SuperTransformer


def mixed_arch() -> ArchConfig:
    """Different encoder/decoder widths, per-layer genes, and a decoder layer reading 2 encoder layers."""
    return ArchConfig(
        encoder_embed_dim=32,
        decoder_embed_dim=16,
        encoder_layers=(EncoderLayerArch(ffn_dim=64, self_heads=2), EncoderLayerArch(ffn_dim=32, self_heads=4)),
        decoder_layers=(
            DecoderLayerArch(ffn_dim=32, self_heads=4, cross_heads=2, cross_layers=2),
            DecoderLayerArch(ffn_dim=64, self_heads=2, cross_heads=4, cross_layers=1),
        ),
    )


def archs(space: SearchSpace, n: int = 10) -> list[ArchConfig]:
    rng = random.Random(1234)
    return [mixed_arch()] + [space.sample(rng) for _ in range(n - 1)]


def expected_parameters(arch: ArchConfig, vocab: int, qkv: int) -> int:
    """Counted from the architecture alone, independently of the modules."""
    e, d = arch.encoder_embed_dim, arch.decoder_embed_dim

    def linear(i: int, o: int) -> int:
        return i * o + o

    def attention(q_in: int, kv_in: int, out: int) -> int:
        return linear(q_in, qkv) + 2 * linear(kv_in, qkv) + linear(qkv, out)

    total = vocab * max(e, d)
    for g in arch.encoder_layers:
        total += 2 * 2 * e + attention(e, e, e) + linear(e, g.ffn_dim) + linear(g.ffn_dim, e)
    total += 2 * e
    for g in arch.decoder_layers:
        total += 3 * 2 * d + attention(d, d, d) + attention(d, e, d) + linear(d, g.ffn_dim) + linear(g.ffn_dim, d)
    return total + 2 * d


def test_sampled_archs_cover_the_interesting_cases(tiny_space):
    sample = archs(tiny_space)
    assert any(a.encoder_embed_dim != a.decoder_embed_dim for a in sample)
    assert any(g.cross_layers > 1 for a in sample for g in a.decoder_layers)
    assert any(len({g.ffn_dim for g in a.encoder_layers + a.decoder_layers}) > 1 for a in sample)


def test_extracted_output_equals_supernet_output(tiny_supernet, random_batch):
    src, prev = random_batch(3, 7, seed=1), random_batch(3, 5, seed=2)
    prev[:, 0] = 2  # BOS
    for arch in archs(tiny_supernet.space):
        tiny_supernet.set_active(arch)
        expected = tiny_supernet(src, prev)  # (B, T, V)
        model = tiny_supernet.extract().eval()
        got = model(src, prev)
        assert got.shape == (3, 5, 50)
        assert (got - expected).abs().max().item() <= 1e-5, arch


def test_extract_of_explicit_arch_leaves_active_arch(tiny_supernet):
    active = tiny_supernet.arch
    model = tiny_supernet.extract(mixed_arch())
    assert model.arch == mixed_arch()
    assert tiny_supernet.arch == active


def test_extracted_parameter_count(tiny_supernet):
    for arch in archs(tiny_supernet.space):
        model = tiny_supernet.extract(arch)
        assert model.num_parameters() == expected_parameters(arch, vocab=50, qkv=32)
        if arch != tiny_supernet.space.largest():  # the largest SubTransformer is the whole supernet
            assert model.num_parameters() < tiny_supernet.num_parameters()
    largest = tiny_supernet.extract(tiny_supernet.space.largest())
    assert largest.num_parameters() == tiny_supernet.num_parameters()


def test_extracted_weights_share_no_storage(tiny_supernet, random_batch):
    src, prev = random_batch(2, 6, seed=3), random_batch(2, 4, seed=4)
    tiny_supernet.set_active(mixed_arch())
    model = tiny_supernet.extract().eval()
    super_ptrs = {p.untyped_storage().data_ptr() for p in tiny_supernet.parameters()}
    assert not super_ptrs & {p.untyped_storage().data_ptr() for p in model.parameters()}

    before_super, before_model = tiny_supernet(src, prev), model(src, prev)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    assert torch.equal(tiny_supernet(src, prev), before_super)
    with torch.no_grad():
        for p in tiny_supernet.parameters():
            p.mul_(0.5)
    after_model = model(src, prev)
    assert not torch.equal(after_model, before_model)  # our own edit shows ...
    with torch.no_grad():
        for p in model.parameters():
            p.sub_(1.0)
    assert torch.allclose(model(src, prev), before_model, atol=1e-5)  # ... the supernet's does not


def test_set_active_rejects_invalid_arch_and_keeps_previous(tiny_supernet):
    previous = tiny_supernet.arch
    bad = ArchConfig(24, 16, mixed_arch().encoder_layers, mixed_arch().decoder_layers)
    with pytest.raises(InvalidArchError, match=r"encoder_embed_dim=24"):
        tiny_supernet.set_active(bad)
    assert tiny_supernet.arch == previous


def test_supernet_starts_with_largest_arch(tiny_space, tiny_model_config):
    model = SuperTransformer(tiny_space, tiny_model_config)
    assert model.arch == tiny_space.largest()
    assert len(model.encoder_layers) == 2 and len(model.decoder_layers) == 2
