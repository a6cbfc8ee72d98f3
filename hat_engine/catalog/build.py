"""From search results to catalog entries: extract -> ONNX -> measured latency -> BLEU/chrF (HAT §4, our way).

Every entry (and every baseline) is measured and scored exactly alike: the served artifact (materialised from
the SuperTransformer and checksummed), the reference workload on the profile's backend and threads, and
sacrebleu on the full held-out test sets with beam 4. An fp32 score depends on the arch, the weights and the
format, not on the host, so it is computed once per `score_key` and shared across profiles; an int8 score also
depends on the ISA tier's int8 kernels (the same int8 artifact, rescored on an AVX-512 VNNI host, moved 0.04-0.12
BLEU per test set from its AVX2 score, where fp32 matched to the last digit), so it is shared by the profiles of
one tier. The arch is part of the key because the weights are not enough: head counts and cross-attention layers
change no weight shapes, so two archs that differ only there extract identical weights and still translate
differently.

Entries are prepared (materialised and scored) one by one, then all entries of a profile are timed together in
interleaved rounds (`measure_all`): on a shared machine, timing one model after another lets a slow spell make
one entry look slower than a larger one. Scoring is most of a build's time (80-290 s per arch and format on the
full sets, one core): `score_ahead` scores a build's known artifacts in several one-thread processes first, and
`seed_scores` takes the scores an earlier catalog recorded under the same key (another host's build of the same
supernet), so a build for a new host scores only what no build has scored.
"""

import json
import logging
import multiprocessing
import shutil
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from hat_engine.catalog.extract import weights_sha256
from hat_engine.catalog.materialize import materialize
from hat_engine.catalog.report import read_report
from hat_engine.catalog.schema import (
    CATALOG_FILE,
    Artifact,
    Catalog,
    CatalogEntry,
    FileRef,
    HardwareProfileRecord,
    PredictorRef,
    load_catalog,
)
from hat_engine.checksums import sha256_file
from hat_engine.config import ArchConfig, DecoderLayerArch, EncoderLayerArch, SearchSpace
from hat_engine.data.tokenizer import TOKENIZER_FILE, Tokenizer
from hat_engine.errors import CatalogError, ConfigError
from hat_engine.hardware import detect
from hat_engine.latency.timing import REFERENCE_WORKLOAD, Workload, measure_interleaved
from hat_engine.model.delta import load_weights
from hat_engine.model.supernet import load_supernet
from hat_engine.model.translate import NO_REPEAT_NGRAM
from hat_engine.runtime.onnx_signature import ONNX_FORMAT
from hat_engine.runtime.runners import ONNX_FORMATS, load_runner
from hat_engine.train.evaluation import evaluate

log = logging.getLogger(__name__)

SUPERNET_FILE, CACHE_DIR = "supernet.pt", ".cache"
SCORES_FILE = "scores-v2.json"  # in CACHE_DIR: BLEU/chrF by `score_key` (v2: keyed by arch too)


@dataclass(frozen=True)
class ProfileTarget:
    """A hardware profile as the catalog build needs it: its id and fingerprint, runtime and threads."""

    profile_id: str
    backend: str
    threads: int
    fingerprint: dict

    @classmethod
    def from_fingerprint(cls, fingerprint: dict) -> "ProfileTarget":
        return cls(fingerprint["profile_id"], fingerprint["backend"], int(fingerprint["threads"]), fingerprint)


def homogeneous_arch(
    space: SearchSpace, embed: int, ffn: int, heads: int, dec_depth: int, cross: int = 1
) -> ArchConfig:
    """A hand-scaled baseline: the same width, FFN and heads in every layer."""
    enc = tuple(EncoderLayerArch(ffn, heads) for _ in range(space.max_encoder_depth))
    dec = tuple(DecoderLayerArch(ffn, heads, heads, cross) for _ in range(dec_depth))
    arch = ArchConfig(embed, embed, enc, dec)
    space.validate(arch)
    return arch


def baseline_archs(space: SearchSpace) -> dict[str, ArchConfig]:
    """Hand-scaled homogeneous SubTransformers spanning the space: scale depth at full width, scale width at
    full depth (what one would try without a search)."""
    big, small = (max(space.embed_dims), max(space.ffn_dims), max(space.heads)), (
        min(space.embed_dims), min(space.ffn_dims), min(space.heads))  # fmt: skip
    archs = {f"depth-{d}": homogeneous_arch(space, *big, d) for d in space.decoder_depths}
    archs[f"width-{small[0]}-ffn{small[1]}"] = homogeneous_arch(space, *small, space.max_decoder_depth)
    archs[f"width-{small[0]}-ffn{small[1]}-depth-1"] = homogeneous_arch(space, *small, min(space.decoder_depths))
    return archs


INT8_FORMATS = ("onnx-int8",)


def score_key(arch: ArchConfig, weights_sha256: str, fmt: str, limit: int | None, isa_tier: str,
              onnx_format: str = ONNX_FORMAT, no_repeat_ngram: int = NO_REPEAT_NGRAM) -> str:  # fmt: skip
    """What a score was computed from: the arch, its extracted weights, the served format, the test sentences,
    for an ONNX format the graphs' format (`onnx_signature.ONNX_FORMAT`: another graph rounds otherwise, and int8
    amplifies it into other translations), for an int8 format the ISA tier whose kernels ran it
    (`hardware.HardwareProfile.isa_tier`), and the decoding's repeat ban where there was one (scores from before
    it have keys without it)."""
    key = f"{arch.arch_id()}/{weights_sha256}/{fmt}/{limit or 'all'}"
    key = f"{key}/{onnx_format}" if fmt in ONNX_FORMATS else key
    key = f"{key}/{isa_tier}" if fmt in INT8_FORMATS else key
    return f"{key}/no-repeat-{no_repeat_ngram}" if no_repeat_ngram else key


def finetune_picks(entries: list[CatalogEntry], n: int, arch_ids: tuple[str, ...] = ()) -> list[CatalogEntry]:
    """The searched entries to fine-tune (HAT Table 5): the `n` largest-budget distinct archs of each profile,
    each arch once (its largest-budget entry, on the first profile that picks it). The largest, because a
    fine-tuned mid-budget arch would outscore, and so drop as dominated, every slower inherited entry. `arch_ids`,
    where given, name the archs instead (each its largest-budget entry, on the first profile that has it): a
    catalog can fine-tune every arch of its front, or reuse fine-tunes an earlier build ran."""
    picks: dict[str, CatalogEntry] = {}
    for profile in dict.fromkeys(e.hardware_profile for e in entries):
        largest: dict[str, CatalogEntry] = {}  # arch id -> its largest-budget entry, largest budgets first
        for e in sorted((e for e in entries if e.hardware_profile == profile), key=lambda x: -x.latency_budget_ms):
            largest.setdefault(e.arch.arch_id(), e)
        chosen = [(a, largest[a]) for a in arch_ids if a in largest] if arch_ids else list(largest.items())[:n]
        for arch_id, e in chosen:
            picks.setdefault(arch_id, e)
    if arch_ids:
        require_archs(arch_ids, {e.arch.arch_id() for e in entries})
        return [picks[a] for a in dict.fromkeys(arch_ids)]
    return list(picks.values())


def require_archs(arch_ids: tuple[str, ...], searched: set[str]) -> None:
    """Raise a `ConfigError` naming the `arch_ids` (to fine-tune) that no search found, and those it found."""
    unknown = [a for a in arch_ids if a not in searched]
    if unknown:
        raise ConfigError(
            f"no searched arch {', '.join(unknown)} to fine-tune; the searches found {', '.join(sorted(searched))}"
        )


def read_scores(path: Path) -> dict[str, dict]:
    """A build's score cache (BLEU/chrF by `score_key`); empty where there is none, or (with a warning) where it is
    unreadable."""
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        log.warning("%s is unreadable; its scores are not used", path)
        return {}


class EntryBuilder:
    """Builds entries into `catalog_dir`, which gets a copy of the supernet and tokenizer. Latency: `rounds`
    interleaved rounds of `runs` timed decodes after `warmup`, per entry."""

    def __init__(self, catalog_dir: Path, supernet_path: Path, tokenizer_path: Path, data_dir: Path,
                 workload: Workload = REFERENCE_WORKLOAD, runs: int = 6, warmup: int = 2, rounds: int = 5,
                 eval_limit: int | None = None, eval_threads: int = 2, isa_tier: str | None = None):  # fmt: skip
        self.dir = Path(catalog_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        for src, name in ((supernet_path, SUPERNET_FILE), (tokenizer_path, TOKENIZER_FILE)):
            if Path(src).resolve() != (self.dir / name).resolve():
                shutil.copyfile(src, self.dir / name)
        self.supernet, _ = load_supernet(self.dir / SUPERNET_FILE)
        self.tokenizer = Tokenizer(self.dir / TOKENIZER_FILE)
        self.data_dir, self.workload = Path(data_dir), workload
        self.runs, self.warmup, self.rounds = runs, warmup, rounds
        self.eval_limit, self.eval_threads = eval_limit, eval_threads
        self.isa_tier = isa_tier or detect(probe_cuda=False).isa_tier  # where int8 scores are computed: this host
        self.stub = Catalog("en-de", self.file_ref(TOKENIZER_FILE), self.file_ref(SUPERNET_FILE), workload, (), ())
        # kept on disk so an interrupted build resumes cheaply
        self._scores_file = self.dir / CACHE_DIR / SCORES_FILE
        self._scores: dict[str, dict] = read_scores(self._scores_file)
        self._latency: dict[str, dict] = {}  # by entry id: what an earlier build timed (`seed_latency`)

    def file_ref(self, name: str) -> FileRef:
        return FileRef(name, sha256_file(self.dir / name))

    def _save_scores(self) -> None:
        self._scores_file.parent.mkdir(parents=True, exist_ok=True)
        self._scores_file.write_text(json.dumps(self._scores, indent=1))

    def seed_scores(self, earlier: Path) -> int:
        """Take the scores an earlier catalog build in `earlier` recorded (`recorded_scores`: fp32, and int8
        from this host's ISA tier) where this build has none under the same key, and those its score cache holds
        beyond them (weights no entry kept: fine-tunes, dropped twins; `score_key` names all a score came from,
        int8 ones of another ISA tier left out); returns how many it took."""
        found = recorded_scores(earlier, self.isa_tier)
        cached = read_scores(Path(earlier) / CACHE_DIR / SCORES_FILE)
        found.update({k: v for k, v in cached.items() if k not in found and self._same_tier(k)})
        found = {k: v for k, v in found.items() if k not in self._scores}
        self._scores.update(found)
        if found:
            self._save_scores()
        return len(found)

    def seed_latency(self, earlier: Path) -> int:
        """Take the latencies an earlier build in `earlier` timed (`recorded_latencies`) for `measure_all`, where
        none was taken yet for that entry id; returns how many it took."""
        found = {k: v for k, v in recorded_latencies(earlier, self.workload).items() if k not in self._latency}
        self._latency.update(found)
        return len(found)

    def _same_tier(self, key: str) -> bool:
        """Whether a `score_key` is fp32's, or int8's from this host's ISA tier."""
        parts = key.split("/")
        return parts[2] not in INT8_FORMATS or self.isa_tier in parts[3:]

    def score_ahead(self, jobs: list[tuple[str, ArchConfig, ProfileTarget, str]], workers: int,
                    say: Callable[[str], None] = log.info) -> int:  # fmt: skip
        """Materialise each (entry id, arch, target, format) from the supernet and score the ones not yet scored
        in `workers` processes of one thread each, largest first; `prepare` then finds their scores. Each score
        is saved as it arrives, so an interrupted build resumes. Returns how many it scored."""
        pending: dict[str, tuple[Path, str, int]] = {}
        for entry_id, arch, target, fmt in jobs:
            entry, folder, key = self._materialized(entry_id, arch, target, 0.0, 0.0, fmt, None)
            if key not in self._scores:
                pending.setdefault(key, (folder, fmt, entry.params))
        if not pending:
            return 0
        order = sorted(pending, key=lambda k: -pending[k][2])
        spawn = multiprocessing.get_context("spawn")  # a forked torch can deadlock in its thread pools
        with ProcessPoolExecutor(max_workers=max(1, workers), mp_context=spawn) as pool:
            futures = {pool.submit(score_artifact, pending[k][0], pending[k][1], self.dir / TOKENIZER_FILE,
                                   self.data_dir, self.workload.beam, self.eval_limit): k for k in order}  # fmt: skip
            for n, future in enumerate(as_completed(futures), 1):
                key = futures[future]
                self._scores[key] = future.result()
                self._save_scores()
                bleu = {name: s["bleu"] for name, s in self._scores[key].items()}
                say(f"scored {n}/{len(order)} ({workers} at once): {key.split('/')[0]} {pending[key][1]}: {bleu}")
        return len(order)

    def _materialized(self, entry_id: str, arch: ArchConfig, target: ProfileTarget, budget_ms: float,
                      predicted_ms: float, fmt: str, source: str | None) -> tuple[CatalogEntry, Path, str]:  # fmt: skip
        """The entry (no scores, no latency), its materialised folder and its `score_key`."""
        if source is None:
            model = self.supernet.extract(arch)
            recipe = {"source": SUPERNET_FILE, "source_sha256": self.stub.supernet.sha256, "builder": "onnx-graph"}
        else:
            model = load_weights(self.dir / source, lambda: self.supernet.extract(arch))
            if model.arch != arch:
                raise ValueError(f"{source} holds another arch than {arch.arch_id()}")
            recipe = {"source": source, "source_sha256": sha256_file(self.dir / source), "builder": "onnx-graph"}
        artifact = Artifact(fmt, f"{CACHE_DIR}/{entry_id}/{fmt}", weights_sha256(model), recipe)
        entry = CatalogEntry(entry_id, target.profile_id, budget_ms, arch, model.num_parameters(), {},
                             round(predicted_ms, 3), {}, {}, (artifact,))  # fmt: skip
        folder = materialize(self.dir, self.stub, entry, fmt, self.dir / CACHE_DIR)
        return entry, folder, score_key(arch, artifact.sha256, fmt, self.eval_limit, self.isa_tier)

    def prepare(self, entry_id: str, arch: ArchConfig, target: ProfileTarget, budget_ms: float,
                predicted_ms: float, fmt: str = "onnx", source: str | None = None) -> CatalogEntry:  # fmt: skip
        """Materialise and score one entry; its latency is left empty for `measure_all`. `source`: a fine-tuned
        model file in the catalog folder to cut it from instead of the supernet."""
        entry, folder, key = self._materialized(entry_id, arch, target, budget_ms, predicted_ms, fmt, source)
        if key not in self._scores:
            self._scores[key] = score_artifact(folder, fmt, self.dir / TOKENIZER_FILE, self.data_dir,
                                               self.workload.beam, self.eval_limit, self.eval_threads)  # fmt: skip
            self._save_scores()
        scores = self._scores[key]
        bleu, chrf = {k: v["bleu"] for k, v in scores.items()}, {k: v["chrf"] for k, v in scores.items()}
        log.info("%s: BLEU %s", entry_id, bleu)
        return replace(entry, bleu=bleu, chrf=chrf)

    def measure_all(self, entries: list[CatalogEntry], targets: dict[str, ProfileTarget],
                    on_round: Callable[[str, int, int], None] = lambda *_: None) -> list[CatalogEntry]:  # fmt: skip
        """The entries with their latency measured: each profile's entries timed together, interleaved. An entry
        whose latency an earlier build timed (`seed_latency`) takes it; the others of its profile are timed (with a
        warning where the two mix: figures from two sittings of a drifting host)."""
        measured: dict[str, dict] = {e.id: self._latency[e.id] for e in entries if e.id in self._latency}
        for profile_id in dict.fromkeys(e.hardware_profile for e in entries if e.id not in measured):
            target = targets[profile_id]
            loaders = {}
            for e in entries:
                if e.hardware_profile == profile_id and e.id not in measured:
                    fmt = e.artifacts[0].format
                    folder = materialize(self.dir, self.stub, e, fmt, self.dir / CACHE_DIR)  # the cache may be stale
                    loaders[e.id] = lambda f=folder, fmt=fmt, n=target.threads: load_runner(f, fmt, n)
            threads = torch.get_num_threads()
            found = measure_interleaved(loaders, self.workload, self.rounds, self.runs, self.warmup,
                                        on_round=lambda r, n, p=profile_id: on_round(p, r, n))  # fmt: skip
            torch.set_num_threads(threads)
            taken = sum(e.id in measured for e in entries if e.hardware_profile == profile_id)
            if taken:
                log.warning("%s: %d entries timed now, %d with the latency an earlier build timed: two sittings",
                            profile_id, len(loaders), taken)  # fmt: skip
            measured.update({k: {"p50": round(v.p50, 3), "p95": round(v.p95, 3)} for k, v in found.items()})
        return [replace(e, latency_ms=measured[e.id]) for e in entries]

    def signatures(self) -> dict:
        """Per test set: its sacrebleu signatures, sentences and reference streams (each set has its own: Bible
        has two references, the others one)."""
        found: dict[str, dict] = {}
        for scores in self._scores.values():
            for name, s in scores.items():
                found.setdefault(name, {
                    "bleu": s.get("bleu_signature"), "chrf": s.get("chrf_signature"),
                    "sentences": s.get("sentences"), "references": s.get("references")})  # fmt: skip
        return found

    def catalog(self, profiles: list[HardwareProfileRecord], entries: list[CatalogEntry], extra: dict) -> Catalog:
        formats = {p.id: ONNX_FORMAT for p in profiles}  # the graphs this build scored, per profile
        extra = {"sacrebleu": self.signatures(), "onnx_format": formats, "no_repeat_ngram": NO_REPEAT_NGRAM, **extra}
        return Catalog("en-de", self.stub.tokenizer, self.stub.supernet, self.workload, tuple(profiles),
                       tuple(entries), extra=extra)  # fmt: skip


def score_artifact(folder: Path, fmt: str, tokenizer: Path, data_dir: Path, beam: int, limit: int | None,
                   threads: int = 1) -> dict:  # fmt: skip
    """BLEU/chrF of one materialised artifact on `threads` threads (what `EntryBuilder.prepare` runs, and what
    `EntryBuilder.score_ahead`'s processes run on one thread each); torch's thread count is left as it was."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return evaluate(load_runner(Path(folder), fmt, threads), Tokenizer(Path(tokenizer)), Path(data_dir),
                        beam=beam, limit=limit)  # fmt: skip
    finally:
        torch.set_num_threads(before)


def recorded_latencies(folder: Path, workload: Workload) -> dict[str, dict]:
    """The latency a catalog build recorded in `folder`, by entry id (its profile, arch and format): every entry of
    catalog.json and every candidate and baseline of report.json, all timed in that build's interleaved rounds.
    Latency depends on the arch, the format and the host, not on the weights, so a rebuild on the same profiles
    (one that fine-tunes more archs, say) can take these rather than time again. ConfigError where that build
    timed another workload."""
    catalog, entries = recorded_entries(folder)
    if catalog.reference_workload != workload:
        raise ConfigError(f"{folder} timed the workload {catalog.reference_workload.to_dict()}, this build "
                          f"{workload.to_dict()}: its latencies do not apply")  # fmt: skip
    return {e.id: dict(e.latency_ms) for e in entries if e.latency_ms}


def recorded_entries(folder: Path) -> tuple[Catalog, list[CatalogEntry]]:
    """The catalog a build wrote in `folder` and every entry it built and measured: catalog.json's entries, and
    report.json's candidates (dominated ones included) and baselines where there is a report."""
    if not (Path(folder) / CATALOG_FILE).is_file():
        raise CatalogError(f"{folder} holds no {CATALOG_FILE}: give a folder `hat catalog build` wrote")
    catalog, report = load_catalog(folder), read_report(folder)
    entries = list(catalog.entries)
    if report is not None:
        entries += report.candidates + [b for _, b in report.baselines]
    return catalog, entries


def recorded_scores(folder: Path, isa_tier: str | None = None) -> dict[str, dict]:
    """The scores a catalog build recorded in `folder`, by `score_key`: every entry of catalog.json and every
    candidate and baseline of report.json, each set with its signature from the catalog's `sacrebleu` record; an
    int8 one under its profile's ISA tier (from the profile's fingerprint; without one, or of another tier than
    `isa_tier` where given, it is left out). A catalog records full-set scores only (each signature names its
    sentence count), so the keys are full-set keys."""
    catalog, entries = recorded_entries(folder)
    signatures = catalog.extra.get("sacrebleu") or {}
    tiers = {p.id: p.fingerprint.get("isa_tier") for p in catalog.hardware_profiles}
    formats = catalog.extra.get("onnx_format") or {}  # none recorded: scored by graphs of a format before 4
    no_repeat_ngram = int(catalog.extra.get("no_repeat_ngram", 0))  # none recorded: decoded without the ban
    found: dict[str, dict] = {}
    for e in entries:
        artifact, tier = e.artifacts[0], tiers.get(e.hardware_profile)
        if not e.bleu or set(e.bleu) - set(signatures) or set(e.bleu) != set(e.chrf):
            continue  # unscored, or a set without a signature: nothing to vouch for it
        if artifact.format in INT8_FORMATS and (not tier or isa_tier not in (None, tier)):
            continue  # an int8 score belongs to its kernels' ISA tier: unknown, or not the one asked for
        onnx_format = formats.get(e.hardware_profile, "")
        if artifact.format in ONNX_FORMATS and not onnx_format:
            continue  # graphs of an unrecorded (older) format scored it: they may translate otherwise
        scores = {name: {"bleu": e.bleu[name], "chrf": e.chrf[name], "bleu_signature": signatures[name]["bleu"],
                         "chrf_signature": signatures[name]["chrf"], "sentences": signatures[name]["sentences"],
                         "references": signatures[name]["references"]} for name in e.bleu}  # fmt: skip
        key = score_key(e.arch, artifact.sha256, artifact.format, None, tier or "", onnx_format, no_repeat_ngram)
        found.setdefault(key, scores)
    return found


def predictor_record(catalog_dir: Path, predictor_path: Path, target: ProfileTarget) -> HardwareProfileRecord:
    """Copy a profile's predictor into the catalog and describe it."""
    from hat_engine.latency.predictor import LatencyPredictor

    predictor = LatencyPredictor.load(predictor_path)
    name = f"predictors/{target.profile_id}.pt"
    (Path(catalog_dir) / "predictors").mkdir(parents=True, exist_ok=True)
    if Path(predictor_path).resolve() != (Path(catalog_dir) / name).resolve():
        shutil.copyfile(predictor_path, Path(catalog_dir) / name)
    e = predictor.extra
    ref = PredictorRef(name, sha256_file(Path(catalog_dir) / name), int(e.get("n_train", 0)), int(e.get("n_test", 0)),
                       float(e.get("mape", 0.0)), float(e.get("kendall_tau", 0.0)))  # fmt: skip
    return HardwareProfileRecord(target.profile_id, target.fingerprint, ref)
