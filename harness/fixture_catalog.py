"""A fixture catalog for the serving tests: a tiny random SuperTransformer, a tiny SentencePiece model and
3-4 entries of different sizes for this host's profile, in the shipped catalog's exact format.

Latencies are MEASURED on this host (`hat_engine.latency.timing.measure` on the reference workload, ONNX Runtime
with the given threads) unless `fake_p95_ms` is given (fast unit tests). BLEU/chrF are TEST DATA set here, not measured
(the weights are random): they rise with the measured latency, so the entries form a latency/BLEU Pareto front
like a real catalog's. `corrupt="source"` stores the best entry's weights as a separate fine-tuned file and then
flips a byte in it (its sha256 no longer matches: refused); `corrupt="artifact"` records a wrong sha256 for the
best entry's extracted weights. Either way the next entry must be served.

Run as a script to build one by hand: `python -m harness.fixture_catalog OUT_DIR [--threads N]`.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import torch

from hat_engine.catalog.extract import weights_sha256
from hat_engine.catalog.materialize import materialize
from hat_engine.catalog.schema import (
    Artifact,
    Catalog,
    CatalogEntry,
    FileRef,
    HardwareProfileRecord,
    save_catalog,
)
from hat_engine.checksums import sha256_file
from hat_engine.config import ArchConfig, DecoderLayerArch, EncoderLayerArch, ModelConfig, SearchSpace
from hat_engine.data.tokenizer import Tokenizer, train_sentencepiece
from hat_engine.hardware import detect
from hat_engine.latency.timing import REFERENCE_WORKLOAD, measure
from hat_engine.model.supernet import SuperTransformer, save_supernet
from hat_engine.runtime.ort_decoding import OrtTranslator

SPACE = SearchSpace(embed_dims=(16, 32), ffn_dims=(32, 64), heads=(2, 4), encoder_depths=(1, 2),
                    decoder_depths=(1, 2), cross_layers=(1, 2), qkv_dim=32)  # fmt: skip
EN = "the house is small and the city is big we go to the station tomorrow morning if the weather is good".split()
DE = "das haus ist klein und die stadt ist gross wir gehen morgen früh zum bahnhof wenn das wetter gut ist".split()


def _arch(embed: int, ffn: int, heads: int, depth: int) -> ArchConfig:
    return ArchConfig(embed, embed, (EncoderLayerArch(ffn, heads),) * depth,
                      (DecoderLayerArch(ffn, heads, heads, min(depth, 2)),) * depth)  # fmt: skip


# Four sizes, smallest to largest.
ARCHS = {"tiny-a": _arch(16, 32, 2, 1), "tiny-b": _arch(16, 64, 2, 2), "tiny-c": _arch(32, 32, 4, 1),
         "tiny-d": _arch(32, 64, 4, 2)}  # fmt: skip


def synthetic_lines(n: int = 400, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    words = EN + DE
    return [" ".join(rng.choice(words) for _ in range(rng.randint(3, 12))).capitalize() + "." for _ in range(n)]


def profile_id(threads: int, backend: str = "onnxruntime") -> str:
    return detect(backend, threads, probe_cuda=False).profile_id


def build_fixture_catalog(
    out: Path,
    threads: int = 1,
    corrupt: str | None = None,
    fake_p95_ms: list[float] | None = None,
    runs: int = 8,
    entries: int = 4,
    host_profile: str | None = None,
) -> Catalog:
    """Write a catalog to `out` (catalog.json, spm.model, supernet.pt, maybe finetuned/) and return it."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    train_sentencepiece(synthetic_lines(), out / "spm.model", vocab_size=100)
    vocab = Tokenizer(out / "spm.model").vocab_size
    torch.manual_seed(0)
    supernet = SuperTransformer(SPACE, ModelConfig(vocab_size=vocab, max_positions=64, dropout=0.0)).eval()
    save_supernet(out / "supernet.pt", supernet)
    supernet_sha = sha256_file(out / "supernet.pt")
    profile = host_profile or profile_id(threads)
    names = list(ARCHS)[:entries]
    drafts = []
    torch.set_num_threads(threads)
    for i, name in enumerate(names):
        model = supernet.extract(ARCHS[name]).eval()
        recipe = {"source": "supernet.pt", "source_sha256": supernet_sha}
        artifacts = tuple(Artifact(fmt, f".cache/{name}/{fmt}", weights_sha256(model), recipe)
                          for fmt in ("onnx", "torch"))  # fmt: skip
        entry = CatalogEntry(name, profile, 0.0, ARCHS[name], sum(p.numel() for p in model.parameters()),
                             {"p50": 0.0, "p95": 0.0}, 0.0, {}, {}, artifacts)  # fmt: skip
        if fake_p95_ms is not None:
            p50 = p95 = float(fake_p95_ms[i])
        else:
            draft = _catalog(out, [entry], profile, supernet_sha)
            folder = materialize(out, draft, entry, "onnx", out / ".fixture-cache")
            stats = measure(OrtTranslator.load(folder, threads=threads), REFERENCE_WORKLOAD, warmup=2, runs=runs)
            p50, p95 = stats.p50, stats.p95
        drafts.append((entry, p50, p95, model))
    drafts.sort(key=lambda d: d[2])  # quality rises with latency (test data, see the module docstring)
    final = []
    for rank, (entry, p50, p95, model) in enumerate(drafts):
        bleu = {"bible_test": 10.0 + 5 * rank, "ding_test": 8.0 + 5 * rank}
        chrf = {"bible_test": 30.0 + 5 * rank, "ding_test": 28.0 + 5 * rank}
        artifacts = entry.artifacts
        if corrupt is not None and rank == len(drafts) - 1:
            artifacts = _corrupted(out, entry, model, corrupt)
        latency = {"p50": round(p50, 3), "p95": round(p95, 3)}
        final.append(CatalogEntry(entry.id, profile, round(p95 * 1.1, 3), entry.arch, entry.params, latency,
                                  round(p95, 3), bleu, chrf, artifacts))  # fmt: skip
    catalog = _catalog(out, final, profile, supernet_sha)
    save_catalog(catalog, out)
    return catalog


def _corrupted(out: Path, entry: CatalogEntry, model, how: str) -> tuple[Artifact, ...]:
    if how == "artifact":
        return tuple(Artifact(a.format, a.path, "0" * 64, a.materialize) for a in entry.artifacts)
    if how != "source":
        raise ValueError(f"corrupt must be 'source' or 'artifact', got {how!r}")
    (out / "finetuned").mkdir(exist_ok=True)
    path = out / "finetuned" / f"{entry.id}.pt"
    model.save(path)
    recipe = {"source": f"finetuned/{entry.id}.pt", "source_sha256": sha256_file(path)}
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # altered after the catalog recorded its sha256
    path.write_bytes(bytes(data))
    return tuple(Artifact(a.format, a.path, a.sha256, recipe) for a in entry.artifacts)


def _catalog(out: Path, entries: list[CatalogEntry], profile: str, supernet_sha: str) -> Catalog:
    return Catalog(
        language_pair="en-de",
        tokenizer=FileRef("spm.model", sha256_file(out / "spm.model")),
        supernet=FileRef("supernet.pt", supernet_sha),
        reference_workload=REFERENCE_WORKLOAD,
        hardware_profiles=(HardwareProfileRecord(profile, {"fixture": True}),),
        entries=tuple(entries),
        extra={"fixture": "tests/fixtures_catalog.py: random weights; BLEU/chrF are test data, latency measured"},
    )


if __name__ == "__main__":
    target = Path(sys.argv[1])
    n_threads = int(sys.argv[sys.argv.index("--threads") + 1]) if "--threads" in sys.argv else 1
    built = build_fixture_catalog(target, n_threads)
    for e in built.entries:
        print(e.id, e.latency_ms, e.mean_bleu)
