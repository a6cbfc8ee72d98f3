"""Shared fixtures for the unit tests: a tiny seeded search space, model config and SuperTransformer."""

import pytest
import torch

from hat_engine.config import ModelConfig, SearchSpace
from hat_engine.model.supernet import SuperTransformer

# The machine's cores are shared: one thread keeps every test small and deterministic.
torch.set_num_threads(1)


@pytest.fixture
def tiny_space() -> SearchSpace:
    return SearchSpace(
        embed_dims=(16, 32),
        ffn_dims=(32, 64),
        heads=(2, 4),
        encoder_depths=(1, 2),
        decoder_depths=(1, 2),
        cross_layers=(1, 2),
        qkv_dim=32,
    )


@pytest.fixture
def tiny_model_config() -> ModelConfig:
    return ModelConfig(vocab_size=50, max_positions=64, dropout=0.1, attention_dropout=0.1)


@pytest.fixture
def tiny_supernet(tiny_space: SearchSpace, tiny_model_config: ModelConfig) -> SuperTransformer:
    torch.manual_seed(0)
    return SuperTransformer(tiny_space, tiny_model_config).eval()


def _random_batch(batch: int, length: int, vocab: int = 50, seed: int = 0, pad_id: int = 0) -> torch.Tensor:
    """Right-padded token ids (B, length) of varying lengths, drawn from the non-special ids (>= 4)."""
    gen = torch.Generator().manual_seed(seed)
    tokens = torch.randint(4, vocab, (batch, length), generator=gen)
    lengths = torch.randint(max(1, length // 2), length + 1, (batch,), generator=gen)
    lengths[0] = length  # the longest row sets the padded width
    positions = torch.arange(length)[None, :]
    return tokens.masked_fill(positions >= lengths[:, None], pad_id)


@pytest.fixture
def random_batch():
    """`random_batch(batch, length, vocab=50, seed=0)` -> right-padded (B, length) token ids."""
    return _random_batch
