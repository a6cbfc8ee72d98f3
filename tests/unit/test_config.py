"""Config: strict YAML at the edge, validation naming the bad field, and checkpoint round-trips."""

import dataclasses
import random
from pathlib import Path

import pytest
import torch

from hat_engine.config import ArchConfig, DecoderLayerArch, EncoderLayerArch, ModelConfig, SearchSpace
from hat_engine.errors import CheckpointError, ConfigError, InvalidArchError
from hat_engine.model.supernet import SuperTransformer, load_supernet, save_supernet
from hat_engine.model.transformer import Transformer

SPACE_FILE = Path(__file__).resolve().parents[2] / "configs" / "space.yaml"


def an_arch() -> ArchConfig:
    return ArchConfig(
        encoder_embed_dim=32,
        decoder_embed_dim=16,
        encoder_layers=(EncoderLayerArch(64, 2), EncoderLayerArch(32, 4)),
        decoder_layers=(DecoderLayerArch(32, 4, 2, 2), DecoderLayerArch(64, 2, 4, 1)),
    )


def test_default_space_file_loads():
    space = SearchSpace.from_yaml(SPACE_FILE.read_text())
    assert space.embed_dims == (192, 256) and space.qkv_dim == 256
    assert space.max_encoder_depth == 6 and space.max_decoder_depth == 6
    space.validate(space.largest())
    space.validate(space.smallest())
    assert space.largest().decoder_layers[0].cross_layers == 3


def test_invalid_arch_names_the_field(tiny_space):
    arch = an_arch()
    bad_ffn = dataclasses.replace(arch.decoder_layers[1], ffn_dim=48)
    with pytest.raises(InvalidArchError, match=r"decoder_layers\[1\]\.ffn_dim=48 not in \(32, 64\)"):
        tiny_space.validate(dataclasses.replace(arch, decoder_layers=(arch.decoder_layers[0], bad_ffn)))
    with pytest.raises(InvalidArchError, match=r"encoder_layers\[0\]\.self_heads=3"):
        tiny_space.validate(dataclasses.replace(arch, encoder_layers=(EncoderLayerArch(64, 3),) * 2))
    with pytest.raises(InvalidArchError, match=r"len\(decoder_layers\)=3"):
        tiny_space.validate(dataclasses.replace(arch, decoder_layers=arch.decoder_layers + arch.decoder_layers[:1]))
    one_encoder_layer = dataclasses.replace(arch, encoder_layers=arch.encoder_layers[:1])
    with pytest.raises(InvalidArchError, match=r"decoder_layers\[0\]\.cross_layers=2 exceeds the encoder depth 1"):
        tiny_space.validate(one_encoder_layer)


def test_sampled_archs_are_valid_and_seeded(tiny_space):
    first = [tiny_space.sample(random.Random(5)) for _ in range(2)]
    assert first[0] == first[1]
    rng = random.Random(0)
    for _ in range(50):
        tiny_space.validate(tiny_space.sample(rng))


def test_space_checks_qkv_divisibility_and_cross_layers():
    with pytest.raises(ConfigError, match="qkv_dim=30 is not divisible by heads \\[4\\]"):
        SearchSpace((16,), (32,), (2, 4), (2,), (1,), (1,), qkv_dim=30)
    with pytest.raises(ConfigError, match="qkv_dim=48 / heads \\[4\\] gives head sizes that are not multiples of 8"):
        SearchSpace((16,), (32,), (2, 4), (2,), (1,), (1,), qkv_dim=48)
    with pytest.raises(ConfigError, match="cross_layers"):
        SearchSpace((16,), (32,), (2,), (1,), (1,), (2, 3), qkv_dim=32)


def test_unknown_yaml_key_is_an_error(tiny_space):
    with pytest.raises(ConfigError, match="'embed_dimz'"):
        SearchSpace.from_yaml(tiny_space.to_yaml().replace("embed_dims", "embed_dimz"))
    with pytest.raises(ConfigError, match=r"decoder_layers\[0\]\.'?heads"):
        text = an_arch().to_yaml().replace("cross_heads", "heads", 1)
        ArchConfig.from_yaml(text)
    with pytest.raises(ConfigError, match="'beam'"):
        ModelConfig.from_dict({"vocab_size": 10, "beam": 4})
    with pytest.raises(ConfigError, match="ffn_dims\\[1\\]='x' must be an integer"):
        SearchSpace.from_dict({**tiny_space.to_dict(), "ffn_dims": [32, "x"]})


def test_yaml_round_trips(tiny_space):
    assert SearchSpace.from_yaml(tiny_space.to_yaml()) == tiny_space
    arch = an_arch()
    assert ArchConfig.from_yaml(arch.to_yaml()) == arch
    assert ArchConfig.from_dict(arch.to_dict()).arch_id() == arch.arch_id()
    assert len(arch.arch_id()) == 10 and arch.arch_id() != tiny_space.largest().arch_id()
    config = ModelConfig(vocab_size=50)
    assert ModelConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize("dtype", [None, torch.float16])
def test_transformer_save_load_round_trip(tmp_path, tiny_supernet, random_batch, dtype):
    model = tiny_supernet.extract(an_arch()).eval()
    path = tmp_path / "sub.pt"
    model.save(path, dtype=dtype)
    loaded = Transformer.load(path).eval()
    assert loaded.arch == model.arch and loaded.qkv_dim == model.qkv_dim
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    src, prev = random_batch(2, 5, seed=1), random_batch(2, 4, seed=2)
    if dtype is None:
        assert torch.equal(loaded(src, prev), model(src, prev))
    else:
        torch.testing.assert_close(loaded(src, prev), model(src, prev), atol=1e-2, rtol=1e-2)


def test_transformer_load_errors(tmp_path, tiny_supernet):
    with pytest.raises(CheckpointError, match="does not exist"):
        Transformer.load(tmp_path / "missing.pt")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt"):
        Transformer.load(corrupt)
    supernet_file = tmp_path / "supernet.pt"
    save_supernet(supernet_file, tiny_supernet)
    with pytest.raises(CheckpointError, match="format"):
        Transformer.load(supernet_file)


def test_supernet_save_load_round_trip(tmp_path, tiny_supernet, random_batch):
    path = tmp_path / "supernet.pt"
    save_supernet(path, tiny_supernet, extra={"step": 7, "loss": 1.5})
    loaded, extra = load_supernet(path)
    assert isinstance(loaded, SuperTransformer) and extra == {"step": 7, "loss": 1.5}
    assert loaded.space == tiny_supernet.space and loaded.model_config == tiny_supernet.model_config
    loaded.eval().set_active(an_arch())
    tiny_supernet.set_active(an_arch())
    src, prev = random_batch(2, 5, seed=3), random_batch(2, 4, seed=4)
    assert torch.equal(loaded(src, prev), tiny_supernet(src, prev))
    save_supernet(path, tiny_supernet, dtype=torch.float16)
    half, _ = load_supernet(path)
    assert next(half.parameters()).dtype == torch.float32


def test_largest_of_a_decoder_depth_and_its_cli_spec(tiny_space):
    from search_jobs.subnets import arch_from_spec

    one = tiny_space.largest(decoder_depth=min(tiny_space.decoder_depths))
    assert one.decoder_depth == min(tiny_space.decoder_depths)
    assert one.encoder_embed_dim == tiny_space.largest().encoder_embed_dim
    assert arch_from_spec(tiny_space, f"largest-dec{one.decoder_depth}") == one
    with pytest.raises(InvalidArchError, match="decoder depth 99"):
        tiny_space.largest(decoder_depth=99)
    with pytest.raises(ConfigError, match="largest-decN"):
        arch_from_spec(tiny_space, "largest-decoder")


def test_an_arch_spec_is_labelled_without_its_folder():
    from search_jobs.subnets import spec_label

    assert [spec_label(s) for s in ("largest", "smallest", "largest-dec2")] == ["largest", "smallest", "largest-dec2"]
    assert spec_label("runs/archs/random-3.yaml") == "random-3" and spec_label("/tmp/mine.txt") == "mine"


def test_repetition_loops_are_a_word_trigram_three_times():
    from hat_engine.train.evaluation import repeats_a_trigram

    assert repeats_a_trigram("das ist gut das ist gut das ist gut")
    assert not repeats_a_trigram("das ist gut das ist gut")
    assert not repeats_a_trigram("") and not repeats_a_trigram("ja ja")
