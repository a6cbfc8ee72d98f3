"""Training smoke tests on a tiny synthetic copy task: loss falls, resume continues, config errors are clear."""

import shutil
from pathlib import Path

import pytest

from hat_engine.errors import ConfigError
from hat_engine.train.config import TrainConfig, archs_for_step, lr_at
from hat_engine.train.training import Trainer
from tests.copy_task import make_copy_task

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def copy_corpus(tmp_path_factory):
    """A tiny corpus (source == target) and space; returns the folder holding `data/` and `space.yaml`."""
    return make_copy_task(tmp_path_factory.mktemp("copy"))


def _config(folder, out, **overrides) -> TrainConfig:
    base = dict(
        data_dir=str(folder / "data"),
        space=str(folder / "space.yaml"),
        out_dir=str(out),
        max_tokens=256,
        lr=3e-3,
        warmup_steps=10,
        dropout=0.0,
        validate_every=10_000,
        valid_sentences=40,
        bf16=False,
        mixture={},
    )
    return TrainConfig(**(base | overrides))


@pytest.mark.integration  # seconds, not milliseconds: runs with the integration tests
def test_loss_falls_on_a_copy_task(copy_corpus, tmp_path):
    trainer = Trainer(_config(copy_corpus, tmp_path, max_steps=120))
    before = trainer.validate()
    trainer.run()
    after = trainer.state["last_valid"]
    for key in before:
        assert after[key] < 0.7 * before[key], (key, before[key], after[key])
    assert (tmp_path / "checkpoint.pt").is_file() and (tmp_path / "metrics.jsonl").is_file()


def test_resume_continues_from_the_checkpoint(copy_corpus, tmp_path):
    Trainer(_config(copy_corpus, tmp_path, max_steps=5)).run()
    resumed = Trainer(_config(copy_corpus, tmp_path, max_steps=8), resume=True)
    assert resumed.state["step"] == 5
    assert resumed.run()["step"] == 8


def test_schedule_sampling_and_config_errors(tmp_path):
    cfg = TrainConfig(lr=1e-3, warmup_steps=100)
    assert lr_at(50, cfg) == pytest.approx(5e-4) and lr_at(100, cfg) == pytest.approx(1e-3)
    assert lr_at(400, cfg) == pytest.approx(5e-4)
    with pytest.raises(ConfigError, match="unknown training config key"):
        TrainConfig.from_yaml("lr: 0.001\nlearning_rate: 3\n")
    with pytest.raises(ConfigError, match="sampling"):
        TrainConfig(sampling="random")


def test_sampled_arch_depends_only_on_seed_and_step(tiny_space):
    cfg = TrainConfig(seed=3)
    assert archs_for_step(tiny_space, cfg, 17) == archs_for_step(tiny_space, cfg, 17)
    assert len({archs_for_step(tiny_space, cfg, s)[0] for s in range(30)}) > 10
    sandwich = archs_for_step(tiny_space, TrainConfig(sampling="sandwich"), 1)
    assert sandwich[:2] == [tiny_space.largest(), tiny_space.smallest()]


def test_loss_matches_cross_entropy(tiny_supernet):
    import torch
    import torch.nn.functional as F

    from hat_engine.data.batching import ParallelData, make_batch
    from hat_engine.train.loss import loss_on

    data = ParallelData([[5, 6, 7], [8, 9]], [[10, 11], [12, 13, 14, 15]])
    batch = make_batch(data, [0, 1], pad=0, bos=2, eos=3)
    tiny_supernet.eval()
    loss, nll, _ = loss_on(tiny_supernet, batch, 0.1, bf16=False)
    logits = tiny_supernet(batch.src, batch.prev).flatten(0, 1)
    target = batch.target.flatten()
    expected = F.cross_entropy(logits, target, ignore_index=0, label_smoothing=0.1, reduction="sum")
    assert torch.allclose(loss, expected, atol=1e-4)
    assert torch.allclose(nll, F.cross_entropy(logits, target, ignore_index=0, reduction="sum"), atol=1e-4)


def test_a_fixed_arch_trains_only_its_own_weights(copy_corpus, tmp_path):
    import torch

    from hat_engine.config import SearchSpace

    space = SearchSpace.from_yaml((copy_corpus / "space.yaml").read_text())
    smallest = space.smallest()  # depth 1 on both sides: layer 1 is not part of it
    trainer = Trainer(_config(copy_corpus, tmp_path, max_steps=20, arch=smallest.to_dict()))
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    assert archs_for_step(space, trainer.cfg, 7) == [smallest]
    trainer.run()
    after = trainer.model.state_dict()
    assert set(trainer.state["last_valid"]) == {f"arch/{name}" for name in trainer.valid}
    outside = [k for k in before if ".layers.1." in k or k.startswith(("encoder_layers.1.", "decoder_layers.1."))]
    assert outside and all(torch.equal(before[k], after[k]) for k in outside)
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("encoder_layers.0."))
    with pytest.raises(ConfigError):
        _config(copy_corpus, tmp_path, arch={"encoder_embed_dim": 16})


def _nll(model, batches) -> float:
    """Per-token NLL of a static Transformer on validation batches (no label smoothing)."""
    import torch

    from hat_engine.train.loss import loss_on

    with torch.no_grad():
        total = sum(loss_on(model.eval(), batch, 0.0, False)[1].item() for batch in batches)
    return total / sum(batch.ntokens for batch in batches)


def test_finetune_writes_a_standalone_model_that_beats_its_inherited_weights(copy_corpus, tmp_path):
    from hat_engine.model.supernet import load_supernet
    from hat_engine.model.transformer import Transformer
    from hat_engine.train.finetune import FinetuneSettings, finetune

    trainer = Trainer(_config(copy_corpus, tmp_path / "super", max_steps=30))
    trainer.run()
    trainer.export(tmp_path / "supernet.pt")
    supernet, _ = load_supernet(tmp_path / "supernet.pt")
    arch = supernet.space.smallest()
    # The data folder's tokenizer is now another one (a corpus rebuilt afresh): fine-tuning must keep to the
    # supernet's, beside its export (a trainer's default), and a trainer told to use the other refuses.
    corpus = tmp_path / "corpus"
    shutil.copytree(copy_corpus, corpus)
    (corpus / "data" / "spm.model").write_bytes((REPO / "catalog" / "spm.model").read_bytes())
    with pytest.raises(ConfigError, match="trained with the tokenizer beside it"):
        Trainer(_config(corpus, tmp_path / "other", init_from=str(tmp_path / "supernet.pt"),
                        tokenizer=str(corpus / "data" / "spm.model")))  # fmt: skip
    settings = FinetuneSettings(lr=3e-3, warmup_steps=10, max_tokens=256, max_steps=60, threads=1, minutes=None)
    info = finetune(tmp_path / "supernet.pt", arch, corpus / "data", tmp_path / "work", tmp_path / "ft.pt",
                    settings)  # fmt: skip
    tuned = Transformer.load(tmp_path / "ft.pt")
    assert tuned.arch == arch and info["steps"] == 60
    valid = next(iter(trainer.valid.values()))
    assert _nll(tuned, valid) < _nll(supernet.extract(arch), valid)


def test_mixture_weights_sample_afresh_each_epoch_and_repeat_whole_copies():
    from hat_engine.data.batching import mixture_indices

    parts = [("bible", 100), ("ding", 10), ("ui", 20)]
    weights = {"bible": 0.25, "ding": 4, "ui": 0}
    e0, e1 = (mixture_indices(parts, weights, seed=1, epoch=e) for e in (0, 1))
    assert len(e0) == 25 + 40 and sorted(i for i in e0 if i < 100) != sorted(i for i in e1 if i < 100)
    assert all(e0.count(i) == 4 for i in range(100, 110)) and not any(i >= 110 for i in e0)
    assert len(set(i for i in e0 if i < 100)) == 25  # a fraction draws distinct pairs
    assert mixture_indices(parts, weights, seed=1, epoch=0) == e0  # deterministic: a resume sees the same epoch
    assert len(mixture_indices(parts, {}, seed=1, epoch=0)) == 130


def test_mixture_config_errors(copy_corpus, tmp_path):
    with pytest.raises(ConfigError, match="numbers >= 0"):
        TrainConfig(mixture={"a": -1})
    with pytest.raises(ConfigError, match="not train splits"):
        Trainer(_config(copy_corpus, tmp_path, mixture={"bible_train": 0.5}))
    with pytest.raises(ConfigError, match="bf16"):
        TrainConfig(bf16="yes")
    assert TrainConfig.from_yaml("upsample: {ding_train: 4}\n").mixture == {"ding_train": 4.0}  # older configs


def test_distillation_loss_is_cross_entropy_against_the_teacher(tiny_supernet):
    import torch

    from hat_engine.data.batching import ParallelData, make_batch
    from hat_engine.train.loss import loss_on

    batch = make_batch(ParallelData([[5, 6, 7], [8, 9]], [[10, 11], [12, 13, 14, 15]]), [0, 1], 0, 2, 3)
    tiny_supernet.eval()
    _, nll, teacher = loss_on(tiny_supernet, batch, 0.1, bf16=False)
    assert torch.allclose(teacher.sum(-1), torch.ones(len(teacher)))
    distilled, _, _ = loss_on(tiny_supernet, batch, 0.1, bf16=False, teacher=teacher)
    entropy = -(teacher * teacher.log()).sum()
    assert distilled.item() == pytest.approx(entropy.item(), rel=1e-4)  # CE(p, p) = H(p)
    one_hot = torch.nn.functional.one_hot(batch.target.flatten()[batch.target.flatten() != 0], teacher.size(1))
    hard, _, _ = loss_on(tiny_supernet, batch, 0.1, bf16=False, teacher=one_hot.float())
    assert hard.item() == pytest.approx(nll.item(), rel=1e-4)


@pytest.mark.integration  # seconds, not milliseconds: runs with the integration tests
def test_sandwich_with_distillation_trains(copy_corpus, tmp_path):
    trainer = Trainer(_config(copy_corpus, tmp_path, max_steps=40, sampling="sandwich"))
    before = trainer.validate()
    after = trainer.run()["last_valid"]
    assert all(after[k] < before[k] for k in before), (before, after)


def test_resume_from_the_export_on_a_fresh_machine(copy_corpus, tmp_path):
    import torch

    from hat_engine.model.supernet import load_supernet

    export = tmp_path / "shipped" / "supernet.pt"
    first = Trainer(_config(copy_corpus, tmp_path / "run1", max_steps=6, export=str(export)))
    first.run()
    assert (export.parent / "spm.model").read_bytes() == first.tokenizer.path.read_bytes()
    shipped, extra = load_supernet(export)
    assert extra["state"]["step"] == 6 and next(shipped.parameters()).dtype == torch.float32
    # another machine: no run folder, only the committed export
    second = Trainer(_config(copy_corpus, tmp_path / "run2", max_steps=9, export=str(export)), resume=True)
    assert "continued from the export" in second.resumed and second.state["step"] == 6
    assert second.state["position"] == first.state["position"] and second.rewarm_from == 6
    cfg = second.cfg
    assert lr_at(7, cfg, 6) == pytest.approx(lr_at(7, cfg) / cfg.rewarm_steps)
    assert second.run()["step"] == 9
    again = Trainer(_config(copy_corpus, tmp_path / "run2", max_steps=12, export=str(export)), resume=True)
    assert "resumed exactly from checkpoint" in again.resumed and again.rewarm_from == 6


def test_native_bf16_reads_the_cpu_flags(tmp_path):
    from hat_engine.hardware import native_bf16

    for flags, expected in (("fpu avx2", False), ("avx2 avx512f avx512_bf16", True), ("avx2 amx_bf16 amx_tile", True)):
        (tmp_path / "cpuinfo").write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
        assert native_bf16("cpu", tmp_path / "cpuinfo") is expected


@pytest.mark.integration  # seconds, not milliseconds: runs with the integration tests
def test_shipped_training_configs_parse_and_cuda_is_refused_clearly_without_a_gpu(tmp_path):
    """The CPU and GPU configs are valid; the GPU path says in one line when torch sees no CUDA device."""
    import subprocess
    import sys
    from pathlib import Path

    import torch

    repo = Path(__file__).resolve().parents[2]
    cpu = TrainConfig.from_yaml((repo / "configs/supernet.yaml").read_text())
    gpu = TrainConfig.from_yaml((repo / "configs/supernet-gpu.yaml").read_text())
    assert cpu.tokenizer == gpu.tokenizer and cpu.mixture == gpu.mixture and gpu.max_minutes <= 8
    assert cpu.export != gpu.export  # the better of the two is shipped: both must survive
    if torch.cuda.is_available():
        pytest.skip("this host has CUDA: the refusal is for hosts without it")
    run = subprocess.run(
        [sys.executable, "-m", "search_jobs.cli", "supernet", "train", "--config", "configs/supernet-gpu.yaml",
         "--device", "cuda"],
        cwd=repo, capture_output=True, text=True,
    )  # fmt: skip
    assert run.returncode != 0 and run.stderr.strip() == "hat: error: --device cuda: torch sees no CUDA device here"


def test_the_gpu_path_bf16_autocast_and_explicit_device_runs_on_the_cpu(copy_corpus, tmp_path):
    """What a CUDA run does differently - an explicit device, bf16 autocast - exercised here on the CPU."""
    trainer = Trainer(_config(copy_corpus, tmp_path, max_steps=3, bf16=True), device="cpu")
    assert trainer.bf16 is True and next(trainer.model.parameters()).device.type == "cpu"
    state = trainer.run()
    assert state["step"] == 3 and all(v == v for v in state["last_valid"].values())  # finite, not NaN


def test_snapshots_average_into_one_supernet_a_run_continues_from(copy_corpus, tmp_path, tiny_supernet, capsys):
    import torch

    from hat_engine.model.supernet import load_supernet, save_supernet
    from search_jobs.cli import main

    run = tmp_path / "run"
    Trainer(_config(copy_corpus, run, max_steps=9, snapshot_every=3)).run()
    snapshots = sorted((run / "snapshots").glob("step-*.pt"))
    assert [p.name for p in snapshots] == ["step-0000003.pt", "step-0000006.pt", "step-0000009.pt"]
    out = tmp_path / "avg" / "supernet.pt"
    assert main(["supernet", "average", *map(str, snapshots), "--last", "2", "--out", str(out)]) == 0
    assert "the mean of 2 supernets, steps 6, 9" in capsys.readouterr().out
    averaged, extra = load_supernet(out)
    (six, _), (nine, extra9) = load_supernet(snapshots[1]), load_supernet(snapshots[2])
    assert extra["averaged_steps"] == [6, 9] and extra["state"] == extra9["state"]
    a, b, mean = six.state_dict(), nine.state_dict(), averaged.state_dict()
    assert any(not torch.equal(a[k], b[k]) for k in a)  # the updates between them changed weights
    for k in mean:
        torch.testing.assert_close(mean[k], ((a[k] + b[k]) / 2).half().float())
    assert (out.parent / "spm.model").read_bytes() == (run / "snapshots" / "spm.model").read_bytes()
    cont = Trainer(_config(copy_corpus, tmp_path / "run2", max_steps=11, export=str(out)), resume=True)
    assert "continued from the export" in cont.resumed and cont.run()["step"] == 11
    # errors: one line, nothing written
    foreign = tmp_path / "foreign" / "supernet.pt"
    save_supernet(foreign, tiny_supernet)
    bad = tmp_path / "bad.pt"
    for argv, message in [
        ([str(snapshots[0]), str(foreign)], "another space or model config"),
        ([str(snapshots[0]), str(tmp_path / "none.pt")], "no such snapshot"),
        ([str(snapshots[0]), "--last", "0"], "--last 0"),
    ]:
        assert main(["supernet", "average", *argv, "--out", str(bad)]) == 1
        assert message in capsys.readouterr().err and not bad.exists()
    assert main(["supernet", "average", str(snapshots[0]), "--out", str(snapshots[0])]) == 1
    assert "is one of the inputs" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="snapshot_every"):
        _config(copy_corpus, run, snapshot_every=-1)
