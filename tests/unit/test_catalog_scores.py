"""Catalog scores keyed by what was scored: two archs that differ only in head counts extract identical weights,
and still each get their own materialised graph and their own BLEU (the v1 build reused one for both)."""

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from hat_engine.catalog.build import EntryBuilder, ProfileTarget, recorded_scores, score_key
from hat_engine.catalog.check import shared_scores, unsigned_scores
from hat_engine.catalog.extract import weights_sha256
from hat_engine.catalog.schema import Catalog, CatalogError, FileRef, HardwareProfileRecord, save_catalog
from hat_engine.data import BuildOptions, build_corpus
from hat_engine.data.tokenizer import Tokenizer
from hat_engine.latency.timing import Workload
from hat_engine.model.supernet import SuperTransformer, save_supernet
from hat_engine.runtime.onnx_signature import ONNX_FORMAT
from hat_engine.runtime.ort_decoding import OrtTranslator

WORDS_EN = "the a house is small big red cat dog runs sleeps here".split()
WORDS_DE = "das ein haus ist klein gross rot katze hund laeuft schlaeft hier".split()


def _corpus(tmp_path):
    files = {}
    for role, n in (("train", 40), ("valid", 6), ("test", 8)):
        en = [" ".join(WORDS_EN[(i + k) % len(WORDS_EN)] for k in range(4)) + "." for i in range(n)]
        de = [" ".join(WORDS_DE[(i + k) % len(WORDS_DE)] for k in range(4)) + "." for i in range(n)]
        for side, lines in (("src", en), ("tgt", de)):
            path = tmp_path / f"{role}.{side}"
            path.write_text("\n".join(lines) + "\n")
            files[f"{role}-{side}"] = path
    build_corpus(BuildOptions(out=tmp_path / "data", custom=files, vocab_size=50))
    return tmp_path / "data"


def _saved_supernet(tiny_space, tiny_model_config, tmp_path) -> tuple[SuperTransformer, Path]:
    """A seeded tiny supernet saved as tmp_path/supernet.pt, on the tiny corpus; and the corpus folder."""
    data = _corpus(tmp_path)
    torch.manual_seed(0)
    vocab = Tokenizer(data / "spm.model").vocab_size
    supernet = SuperTransformer(tiny_space, replace(tiny_model_config, vocab_size=vocab)).eval()
    save_supernet(tmp_path / "supernet.pt", supernet, dtype=None)
    return supernet, data


def test_archs_differing_only_in_heads_get_their_own_graph_and_scores(tiny_space, tiny_model_config, tmp_path):
    tiny_supernet, data = _saved_supernet(tiny_space, tiny_model_config, tmp_path)
    two = tiny_space.smallest()
    enc = tuple(replace(x, self_heads=4) for x in two.encoder_layers)
    dec = tuple(replace(x, self_heads=4, cross_heads=4) for x in two.decoder_layers)
    four = replace(two, encoder_layers=enc, decoder_layers=dec)
    tiny_space.validate(four)
    assert weights_sha256(tiny_supernet.extract(two)) == weights_sha256(tiny_supernet.extract(four))  # the blind spot

    builder = EntryBuilder(tmp_path / "catalog", tmp_path / "supernet.pt", data / "spm.model", data,
                           workload=Workload(beam=2), eval_threads=1)  # fmt: skip
    target = ProfileTarget("p", "onnxruntime", 1, {})
    # The same entry id for both: the materialisation cache must not hand the 2-head graph to the 4-head arch.
    a = builder.prepare("e", two, target, 10.0, 9.0)
    assert OrtTranslator.load(tmp_path / "catalog/.cache/e/onnx").arch == two
    b = builder.prepare("e", four, target, 10.0, 9.0)
    assert OrtTranslator.load(tmp_path / "catalog/.cache/e/onnx").arch == four
    keys = set(builder._scores)
    assert keys == {score_key(x, a.artifacts[0].sha256, "onnx", None, "any") for x in (two, four)}  # both scored
    assert a.bleu.keys() == b.bleu.keys() == {"custom_test"}

    # Per-set signatures, with the full set's size; the validator flags a reused score and an unsigned set.
    signatures = builder.signatures()
    assert signatures["custom_test"]["sentences"] == 8 and signatures["custom_test"]["references"] == 1
    assert "nrefs:1" in signatures["custom_test"]["bleu"]
    cat = Catalog("en-de", FileRef("spm.model", "0"), FileRef("supernet.pt", "0"), Workload(),
                  (HardwareProfileRecord("p", {}),), (a, b), extra={"sacrebleu": signatures})  # fmt: skip
    reused = replace(b, bleu=a.bleu, chrf=a.chrf)
    assert shared_scores(replace(cat, entries=(a, reused))) == [
        "entries e and e have different archs but share all their scores"
    ]
    assert shared_scores(replace(cat, entries=(a, replace(a, id="twin")))) == []  # same arch: fine
    assert unsigned_scores(cat) == []
    extra = replace(a, bleu={**a.bleu, "modern_test": 1.0})
    assert unsigned_scores(replace(cat, entries=(extra,))) == [
        "test set modern_test has scores but no sacrebleu signature"
    ]


def _builder_and_archs(tiny_space, tiny_model_config, tmp_path):
    _, data = _saved_supernet(tiny_space, tiny_model_config, tmp_path)

    def builder(name: str, isa_tier: str = "avx2") -> EntryBuilder:
        return EntryBuilder(tmp_path / name, tmp_path / "supernet.pt", data / "spm.model", data,
                            workload=Workload(beam=2), eval_threads=1, isa_tier=isa_tier)  # fmt: skip

    return builder, [tiny_space.smallest(), tiny_space.largest()]


def test_scores_ahead_in_processes_equal_the_scores_in_turn(tiny_space, tiny_model_config, tmp_path):
    builder, archs = _builder_and_archs(tiny_space, tiny_model_config, tmp_path)
    target = ProfileTarget("p", "onnxruntime", 1, {})
    in_turn = builder("one")
    expected = [in_turn.prepare(f"e{i}", a, target, 10.0, 9.0, fmt) for i, a in enumerate(archs)
                for fmt in ("onnx", "onnx-int8")]  # fmt: skip
    ahead = builder("two")
    jobs = [(f"e{i}", a, target, fmt) for i, a in enumerate(archs) for fmt in ("onnx", "onnx-int8")]
    said: list[str] = []
    assert ahead.score_ahead(jobs, workers=2, say=said.append) == 4  # real processes, one thread each
    assert len(said) == 4 and all(line.startswith("scored ") for line in said)
    assert ahead.score_ahead(jobs, workers=2) == 0  # all scored: nothing runs again
    reloaded = builder("two")  # the scores were saved as they arrived
    assert reloaded._scores == in_turn._scores
    for e in expected:
        assert reloaded.prepare(e.id, e.arch, target, 10.0, 9.0, e.artifacts[0].format).bleu == e.bleu


def test_a_build_takes_the_scores_an_earlier_catalog_recorded(tiny_space, tiny_model_config, tmp_path, monkeypatch):
    builder, archs = _builder_and_archs(tiny_space, tiny_model_config, tmp_path)
    target = ProfileTarget("p", "onnxruntime", 1, {"isa_tier": "avx2"})
    first = builder("first")
    timed = {"p50": 5.0, "p95": 6.0}  # as `measure_all` leaves them: a catalog holds measured entries only
    entries = [replace(first.prepare(f"p@{a.arch_id()}", a, target, 10.0, 9.0), latency_ms=timed) for a in archs]
    twin = replace(first.prepare(f"p@{archs[0].arch_id()}-int8", archs[0], target, 10.0, 9.0, "onnx-int8"),
                   latency_ms=timed)  # fmt: skip
    profile = HardwareProfileRecord("p", {"isa_tier": "avx2"})
    save_catalog(first.catalog([profile], [entries[0], twin], {}), first.dir)
    (first.dir / "report.json").write_text(json.dumps({"baselines": [{**entries[1].to_dict(), "baseline": "depth-x"}]}))
    assert set(recorded_scores(first.dir)) == set(first._scores)  # entries, twin and baseline, with signatures

    # A catalog whose graphs' format is not recorded (built before format 4) vouches for no ONNX score.
    cat = json.loads((first.dir / "catalog.json").read_text())
    assert cat["extra"]["onnx_format"] == {"p": ONNX_FORMAT}
    older = tmp_path / "older"
    older.mkdir()
    del cat["extra"]["onnx_format"]
    (older / "catalog.json").write_text(json.dumps(cat))
    assert recorded_scores(older) == {}

    other = ProfileTarget("q", "onnxruntime", 2, {})  # another profile of the same supernet
    same_tier, other_tier = builder("second"), builder("third", isa_tier="avx512bf16")
    assert same_tier.seed_scores(first.dir) == 3 and same_tier.seed_scores(first.dir) == 0
    assert other_tier.seed_scores(first.dir) == 2  # fp32 only: int8 scores belong to their kernels' ISA tier

    def scored_again(*_, **__):
        raise AssertionError("a recorded score was computed again")

    monkeypatch.setattr("hat_engine.catalog.build.evaluate", scored_again)
    for built in (same_tier, other_tier):
        for e in entries:
            again = built.prepare(f"q@{e.arch.arch_id()}", e.arch, other, 10.0, 9.0)
            assert again.bleu == e.bleu and again.chrf == e.chrf
        assert built.signatures() == first.signatures()
    assert same_tier.prepare("q@x-int8", archs[0], other, 10.0, 9.0, "onnx-int8").bleu == twin.bleu
    with pytest.raises(AssertionError, match="computed again"):  # another tier's int8 kernels: scored here
        other_tier.prepare("q@x-int8", archs[0], other, 10.0, 9.0, "onnx-int8")
    with pytest.raises(AssertionError, match="computed again"):  # never recorded: scored
        same_tier.prepare("q@y-int8", archs[1], other, 10.0, 9.0, "onnx-int8")
    with pytest.raises(CatalogError, match="no catalog.json"):
        same_tier.seed_scores(tmp_path)


def test_a_build_takes_what_an_earlier_build_scored_but_no_entry_records(tiny_space, tiny_model_config, tmp_path,
                                                                         monkeypatch):  # fmt: skip
    """Scores of weights the earlier catalog does not ship (a fine-tune not kept, a dominated twin) come from its
    score cache, whose keys name all a score came from; another ISA tier's int8 scores stay out."""
    from hat_engine.catalog.build import CACHE_DIR, SCORES_FILE

    builder, archs = _builder_and_archs(tiny_space, tiny_model_config, tmp_path)
    target = ProfileTarget("p", "onnxruntime", 1, {"isa_tier": "avx2"})
    first = builder("first")
    shipped = replace(first.prepare(f"p@{archs[0].arch_id()}", archs[0], target, 10.0, 9.0),
                      latency_ms={"p50": 5.0, "p95": 6.0})  # fmt: skip
    unshipped = [first.prepare(f"p@{archs[1].arch_id()}{suffix}", archs[1], target, 10.0, 9.0, fmt)
                 for suffix, fmt in (("", "onnx"), ("-int8", "onnx-int8"))]  # fmt: skip
    save_catalog(first.catalog([HardwareProfileRecord("p", {"isa_tier": "avx2"})], [shipped], {}), first.dir)
    assert len(recorded_scores(first.dir)) == 1
    same_tier, other_tier = builder("second"), builder("third", isa_tier="avx512bf16")
    assert same_tier.seed_scores(first.dir) == 3 and other_tier.seed_scores(first.dir) == 2

    def scored_again(*_, **__):
        raise AssertionError("a score was computed again")

    monkeypatch.setattr("hat_engine.catalog.build.evaluate", scored_again)
    for e in unshipped:
        assert same_tier.prepare(e.id, archs[1], target, 10.0, 9.0, e.artifacts[0].format).bleu == e.bleu
    with pytest.raises(AssertionError, match="computed again"):  # another tier's int8 kernels: scored here
        other_tier.prepare(unshipped[1].id, archs[1], target, 10.0, 9.0, "onnx-int8")
    (first.dir / CACHE_DIR / SCORES_FILE).write_text("{")  # unreadable: only what the catalog records
    assert builder("fourth").seed_scores(first.dir) == 1


def test_a_rebuild_takes_the_latency_an_earlier_build_timed(tiny_space, tiny_model_config, tmp_path, monkeypatch):
    """`--latency-from`: an entry an earlier build timed (an entry, a dominated candidate, a baseline: same id, so
    the same profile, arch and format) keeps that latency whatever its weights; only the others are timed."""
    import hat_engine.catalog.build as build_module
    from hat_engine.catalog.build import recorded_latencies
    from hat_engine.errors import ConfigError

    builder, archs = _builder_and_archs(tiny_space, tiny_model_config, tmp_path)
    target = ProfileTarget("p", "onnxruntime", 1, {"isa_tier": "avx2"})
    first = builder("first")
    shipped = replace(first.prepare("p@a", archs[0], target, 10.0, 9.0), latency_ms={"p50": 5.0, "p95": 6.0})
    baseline = replace(first.prepare("p@baseline-b", archs[1], target, 0.0, 9.0), latency_ms={"p50": 7.0, "p95": 8.0})
    save_catalog(first.catalog([HardwareProfileRecord("p", {})], [shipped], {}), first.dir)
    (first.dir / "report.json").write_text(json.dumps({"baselines": [{**baseline.to_dict(), "baseline": "b"}]}))
    assert recorded_latencies(first.dir, Workload(beam=2)) == {
        "p@a": shipped.latency_ms,
        "p@baseline-b": baseline.latency_ms,
    }
    with pytest.raises(ConfigError, match="timed the workload"):
        recorded_latencies(first.dir, Workload(beam=4))

    timed: list[set[str]] = []
    real = build_module.measure_interleaved

    def spy(loaders, *args, **kwargs):
        timed.append(set(loaders))
        return real(loaders, *args, **kwargs)

    monkeypatch.setattr(build_module, "measure_interleaved", spy)
    second = builder("second")
    assert second.seed_latency(first.dir) == 2 and second.seed_latency(first.dir) == 0
    again = [second.prepare("p@a", archs[0], target, 10.0, 9.0), second.prepare("p@baseline-b", archs[1], target, 0, 9),
             second.prepare("p@new", archs[1], target, 10.0, 9.0)]  # fmt: skip
    second.rounds = second.runs = 1
    found = {e.id: e.latency_ms for e in second.measure_all(again, {"p": target})}
    assert timed == [{"p@new"}] and found["p@a"] == shipped.latency_ms and found["p@baseline-b"] == baseline.latency_ms
    assert found["p@new"]["p50"] > 0
    timed.clear()
    assert [e.latency_ms for e in second.measure_all(again[:2], {"p": target})] == [
        shipped.latency_ms,
        baseline.latency_ms,
    ]
    assert timed == []  # all recorded: nothing is timed
