"""The catalog-build policy: from search results to a catalog (HAT's last offline step, with the choices the
product makes on the way). Each searched arch becomes an entry per profile; hand-scaled baselines are built and
timed alike for the report; the largest-budget archs are fine-tuned and kept where BLEU rises; int8 twins are
kept where no test set loses more than a set BLEU drop; every entry is timed in interleaved rounds; entries
dominated on their profile are dropped, and fine-tuned weights no kept entry uses are deleted.

The job (`hat catalog build`) parses arguments and prints; `say` carries the progress lines."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from hat_engine.catalog.build import (
    SUPERNET_FILE,
    EntryBuilder,
    ProfileTarget,
    baseline_archs,
    finetune_picks,
    predictor_record,
    require_archs,
)
from hat_engine.catalog.check import unreferenced_weights
from hat_engine.catalog.report import write_report
from hat_engine.catalog.schema import Catalog, CatalogEntry, dominated, save_catalog
from hat_engine.config import ArchConfig
from hat_engine.errors import ConfigError
from hat_engine.latency.predictor import LatencyPredictor
from hat_engine.latency.retest import load_retests
from hat_engine.search.results import SearchResults

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuildPolicy:
    baselines: bool = True
    finetune: int = 2  # searched archs per profile to fine-tune
    finetune_archs: tuple[str, ...] = ()  # or these archs (ids), in place of each profile's `finetune` largest
    finetune_minutes: float = 8.0
    finetune_steps: int | None = None  # replaces finetune_minutes: every arch alike, reproducible
    finetune_work: Path = Path("runs/finetune")
    int8: bool = True
    int8_max_bleu_drop: float = 0.5
    finetune_delta: bool = True  # store fine-tuned weights as an int8 delta on the supernet where BLEU holds
    delta_max_bleu_drop: float = 0.1  # mean BLEU the delta may lose against the whole fp16 file
    finetune_baselines: bool = True  # with finetune > 0: fine-tune the baselines alike (fine-tuned vs fine-tuned)
    retest_dir: Path | None = None  # `hat latency retest --json` files, PROFILE.json: the noise floor in the report
    score_workers: int = 1  # > 1: score the searched archs (and their int8 twins) and baselines ahead in processes
    scores_from: tuple[Path, ...] = ()  # earlier catalogs whose recorded scores are taken under the same key
    pool: bool = False  # every profile gets every search's archs as candidates, not only its own search's
    pool_from: tuple[Path, ...] = ()  # searches whose archs join the pool; their own profiles are not built
    finetuned_from: tuple[Path, ...] = ()  # earlier catalogs whose shipped fine-tuned weights a pick takes as they are
    latency_from: tuple[Path, ...] = ()  # earlier builds of the same profiles whose timings entries take, untimed
    finetune_max_mb: float | None = None  # fine-tuned weights shipped, in all; a pick past it is scored, not shipped

    def __post_init__(self) -> None:
        if self.finetune < 0 or (self.finetune_steps is not None and self.finetune_steps < 1):
            raise ConfigError("finetune must be >= 0 archs and finetune_steps >= 1 step")
        if self.finetune_max_mb is not None and self.finetune_max_mb < 0:
            raise ConfigError(f"finetune_max_mb {self.finetune_max_mb}: give 0 MB or more")
        if self.score_workers < 1:
            raise ConfigError(f"score_workers {self.score_workers}: give at least 1 process")

    @property
    def fine_tunes(self) -> bool:
        return bool(self.finetune or self.finetune_archs)


@dataclass(frozen=True)
class Job:
    """One entry to build: a searched arch for a budget, or a hand-scaled baseline (`baseline` names it)."""

    entry_id: str
    arch: ArchConfig
    target: ProfileTarget
    budget_ms: float
    predicted_ms: float
    baseline: str | None = None


@dataclass
class _Built:
    entries: list[CatalogEntry]
    baselines: list[tuple[str, CatalogEntry]]
    twin_of: dict[str, str] = field(default_factory=dict)  # int8 entry id -> its fp32 entry id


def entry_id(profile_id: str, arch: ArchConfig) -> str:
    """What an entry is: its profile and its arch (`ArchConfig.arch_id`); an int8 twin adds "-int8". Not the
    budget it was searched for, which is a prediction: entries named by it were measured out of its order."""
    return f"{profile_id}@{arch.arch_id()}"


def searched_jobs(results: SearchResults, target: ProfileTarget) -> list[Job]:
    """One job per distinct searched arch; an arch found for several budgets is built once, for the smallest."""
    jobs: dict[str, Job] = {}
    for r in sorted(results.results, key=lambda x: x.budget_ms):
        name = entry_id(target.profile_id, r.arch)
        jobs.setdefault(name, Job(name, r.arch, target, r.budget_ms, r.predicted_latency_ms))
    return list(jobs.values())


def pooled_jobs(jobs: list[Job], pool: list[ArchConfig], target: ProfileTarget,
                predict: Callable[[ArchConfig], float]) -> list[Job]:  # fmt: skip
    """`jobs` and one job for each arch of `pool` (other searches' archs) they lack, its budget the latency this
    profile's predictor (`predict`) gives it; sorted by budget. A profile whose own search found few distinct
    archs, or archs that turned out dominated when timed, gets the others as candidates; dominance on the
    measured timings then keeps the best of all."""
    out = {j.entry_id: j for j in jobs}
    for arch in pool:
        name = entry_id(target.profile_id, arch)
        if name not in out:
            predicted = predict(arch)
            out[name] = Job(name, arch, target, round(predicted, 1), predicted)
    return sorted(out.values(), key=lambda j: j.budget_ms)


def jobs_for(results: SearchResults, builder: EntryBuilder, with_baselines: bool,
             pool: list[ArchConfig] | None = None) -> tuple[ProfileTarget, list[Job]]:  # fmt: skip
    """The profile a search was for (its predictor's fingerprint) and its jobs: the searched archs, those of
    `pool` it lacks (`pooled_jobs`), and the hand-scaled baselines."""
    predictor = LatencyPredictor.load(results.predictor)
    if "profile" not in predictor.extra:
        raise ConfigError(f"{results.predictor} holds no profile fingerprint; refit it")
    target = ProfileTarget.from_fingerprint(predictor.extra["profile"])
    jobs = searched_jobs(results, target)
    if pool:
        jobs = pooled_jobs(jobs, pool, target, predictor.predict_one)
    if with_baselines:
        for name, arch in baseline_archs(builder.supernet.space).items():
            jobs.append(
                Job(f"{target.profile_id}@baseline-{name}", arch, target, 0.0, predictor.predict_one(arch), name)
            )
    return target, jobs


def build_catalog(builder: EntryBuilder, searches: list[SearchResults], policy: BuildPolicy,
                  say: Callable[[str], None] = log.info) -> Catalog:  # fmt: skip
    """Build, time, prune and save the catalog into `builder.dir`, with report.json and REPORT.md beside it."""
    out = builder.dir
    profiles, jobs, costs, targets = [], [], {}, {}
    pooled = searches + [SearchResults.load(path) for path in policy.pool_from]
    pool = [r.arch for results in pooled for r in results.results] if policy.pool or policy.pool_from else None
    for results in searches:
        target, profile_jobs = jobs_for(results, builder, policy.baselines, pool)
        targets[target.profile_id] = target
        profiles.append(predictor_record(out, results.predictor, target))
        costs[target.profile_id] = results.search
        jobs += profile_jobs
    require_archs(policy.finetune_archs, {j.arch.arch_id() for j in jobs if j.baseline is None})  # before scoring
    shipped = shipped_finetunes(policy.finetuned_from, builder.file_ref(SUPERNET_FILE).sha256)
    for earlier in policy.scores_from:
        say(f"took {builder.seed_scores(earlier)} recorded scores from {earlier}")
    for earlier in policy.latency_from:
        say(f"took {builder.seed_latency(earlier)} recorded latencies from {earlier}")
    if policy.score_workers > 1:
        formats = ("onnx", "onnx-int8") if policy.int8 else ("onnx",)
        ahead = [(j.entry_id + ("-int8" if f == "onnx-int8" else ""), j.arch, j.target, f)
                 for j in jobs for f in (formats if j.baseline is None else ("onnx",))]  # fmt: skip
        builder.score_ahead(ahead, policy.score_workers, say)
    built = _Built([], [])
    for n, job in enumerate(jobs, 1):
        entry = builder.prepare(job.entry_id, job.arch, job.target, job.budget_ms, job.predicted_ms)
        (built.baselines.append((job.baseline, entry)) if job.baseline else built.entries.append(entry))
        say(f"[{n}/{len(jobs)}] {entry.id}: BLEU {entry.bleu}")
    built.entries, finetuned = finetune_entries(builder, built.entries, targets, policy, say, shipped)
    tuned_baselines = (finetune_baselines(builder, built.baselines, targets, policy, say)
                       if policy.fine_tunes and policy.finetune_baselines else {})  # fmt: skip
    int8 = {"max_bleu_drop": policy.int8_max_bleu_drop, "kept": [], "rejected_bleu_drop": {}}
    twins: list[CatalogEntry] = []
    if policy.int8:
        twins, int8["rejected_bleu_drop"] = int8_twins(builder, built.entries, targets, policy.int8_max_bleu_drop, say)
        built.twin_of = {t.id: fp32 for t, fp32 in twins}
        twins = [t for t, _ in twins]
        int8["kept"] = [t.id for t in twins]
    baseline_names = {e.id: name for name, e in built.baselines}
    timed = builder.measure_all(built.entries + twins + [e for _, e in built.baselines], targets,
                                lambda p, r, n: say(f"{p}: timing round {r}/{n} done"))  # fmt: skip
    entries = [e for e in timed if e.id not in baseline_names]
    baselines = [(baseline_names[e.id], e) for e in timed if e.id in baseline_names]
    p50 = {e.id: e.latency_ms["p50"] for e in timed}
    for twin_id, fp32 in built.twin_of.items():
        say(f"{twin_id}: p50 {p50[twin_id]:.1f} ms ({p50[fp32] / p50[twin_id]:.2f}x fp32)")
    candidates = list(entries)  # before the dominated are dropped: the report compares the search with the baselines
    # A searched entry that is slower and no better than another of its profile is of no use to anyone.
    dropped = {slow for p in profiles for slow, _ in dominated([e for e in entries if e.hardware_profile == p.id])}
    for entry_id in sorted(dropped):
        say(f"dropped {entry_id}: dominated (slower and no better) by another entry of its profile")
    entries = [e for e in entries if e.id not in dropped]
    used = {a.materialize.get("source") for e in entries for a in e.artifacts if a.materialize}
    for record in finetuned:  # fine-tuned weights whose entries were all dominated: not shipped
        if record["weights"] and record["weights"] not in used:
            (out / record["weights"]).unlink(missing_ok=True)
            record.update(weights=None, note="its entries were dropped as dominated")
    extra = {"built_with": "hat catalog build", "dropped_dominated": sorted(dropped), "int8": int8,
             "finetune": finetuned}  # fmt: skip
    if policy.latency_from:
        extra["latency_from"] = [str(p) for p in policy.latency_from]
    catalog = builder.catalog(profiles, entries, extra)
    save_catalog(catalog, out)
    for name in unreferenced_weights(out, catalog):
        say(f"warning: {name} is used by no entry (an earlier build's?); remove it before committing")
    retests = load_retests(policy.retest_dir, [p.id for p in profiles])
    write_report(out, catalog, baselines, costs, candidates, tuned_baselines, retests)
    return catalog


def _finetune_settings(policy: BuildPolicy):
    """The fine-tuning budget every arch gets alike (steps), or a wall-clock limit; and how to say it."""
    from hat_engine.train.finetune import FinetuneSettings

    if policy.finetune_steps is not None:
        return FinetuneSettings(minutes=None, max_steps=policy.finetune_steps), f"{policy.finetune_steps} steps"
    return FinetuneSettings(minutes=policy.finetune_minutes), f"{policy.finetune_minutes:g} min"


def finetune_baselines(builder: EntryBuilder, baselines: list[tuple[str, CatalogEntry]],
                       targets: dict[str, ProfileTarget], policy: BuildPolicy,
                       say: Callable[[str], None]) -> dict[str, dict]:  # fmt: skip
    """Fine-tuned compared with fine-tuned: each hand-scaled baseline arch fine-tuned exactly as the searched
    picks are (same steps, same data) and scored on the same test sets; its weights are not shipped (a baseline
    is evidence, not an entry), and its latency is its inherited twin's (same arch). By baseline name."""
    from hat_engine.train.finetune import finetune

    settings, limit = _finetune_settings(policy)
    done: dict[str, dict] = {}  # arch id -> record: the same baseline arch on every profile is tuned once
    out: dict[str, dict] = {}
    for name, b in baselines:
        arch_id = b.arch.arch_id()
        if arch_id not in done:
            weights = f"finetuned/baseline-{arch_id}.pt"
            say(f"fine-tuning baseline {name} ({arch_id}) for {limit}")
            info = finetune(builder.dir / SUPERNET_FILE, b.arch, builder.data_dir, policy.finetune_work / arch_id,
                            builder.dir / weights, settings)  # fmt: skip
            target = targets[b.hardware_profile]
            tuned = builder.prepare(f"{b.id}-finetuned", b.arch, target, 0.0, b.predicted_latency_ms, source=weights)
            (builder.dir / weights).unlink()
            done[arch_id] = {"arch_id": arch_id, **info, "bleu_inherited": b.bleu, "bleu_finetuned": tuned.bleu,
                             "chrf_finetuned": tuned.chrf}  # fmt: skip
            say(f"baseline {name}: BLEU inherited {b.bleu} -> fine-tuned {tuned.bleu}")
        out[name] = done[arch_id]
    return out


def _as_delta(
    builder: EntryBuilder,
    tuned: CatalogEntry,
    name: str,
    max_drop: float,
    rebuilt: Callable[..., CatalogEntry],
    say: Callable[[str], None],
) -> tuple[CatalogEntry, str, dict]:
    """The fine-tuned weights `name` (fp16, whole) as an int8 delta on the supernet's extraction
    (`model.delta`), kept when its mean BLEU is within `max_drop` of the whole file's, which is then removed;
    else the whole file stays. Both are scored on the full test sets, so the choice is measured."""
    from hat_engine.model.delta import save_delta
    from hat_engine.model.transformer import Transformer

    whole = builder.dir / name
    delta_name = name.removesuffix(".pt") + ".delta.pt"
    counts = save_delta(Transformer.load(whole), builder.supernet.extract(tuned.arch), builder.dir / delta_name)
    sizes = {"fp16_bytes": whole.stat().st_size, "delta_bytes": (builder.dir / delta_name).stat().st_size}
    as_delta = rebuilt(tuned, delta_name)
    record = {**sizes, **counts, "bleu_fp16": tuned.bleu, "bleu_delta": as_delta.bleu}
    drop = tuned.mean_bleu - as_delta.mean_bleu
    say(f"{name}: int8 delta {sizes['delta_bytes'] / 2**20:.1f} MB vs fp16 {sizes['fp16_bytes'] / 2**20:.1f} MB, "
        f"mean BLEU {as_delta.mean_bleu:.2f} vs {tuned.mean_bleu:.2f}")  # fmt: skip
    if drop <= max_drop:
        whole.unlink()
        return as_delta, delta_name, {"storage": "int8-delta", **record}
    (builder.dir / delta_name).unlink()  # its stale cache folder is rebuilt by `measure_all`'s materialise
    return tuned, name, {"storage": "fp16", "delta_rejected_bleu_drop": round(drop, 2), **record}


def shipped_finetunes(catalogs: tuple[Path, ...], supernet_sha256: str) -> dict[str, dict]:
    """The fine-tuned weights earlier `catalogs` ship, by arch id: each kept `finetune` record, with `file` (the
    weights' path, checked against the sha256 its entries' materialisation records) and `catalog`. Fine-tuning
    does not depend on the hardware, so a build for another host takes these as they are, rather than
    fine-tuning the same arch again into other weights. A catalog of another supernet is refused."""
    from hat_engine.catalog.schema import load_catalog
    from hat_engine.checksums import sha256_file

    found: dict[str, dict] = {}
    for folder in catalogs:
        catalog = load_catalog(folder)
        if catalog.supernet.sha256 != supernet_sha256:
            raise ConfigError(f"--finetuned-from {folder}: its supernet is another (sha256 "
                              f"{catalog.supernet.sha256[:12]}, this build's {supernet_sha256[:12]})")  # fmt: skip
        stamps = {a.materialize["source"]: a.materialize.get("source_sha256") for e in catalog.entries
                  for a in e.artifacts if a.materialize}  # fmt: skip
        for record in catalog.extra.get("finetune") or []:
            name = record.get("weights")
            if not record.get("kept") or name not in stamps or record["arch_id"] in found:
                continue
            if sha256_file(Path(folder) / name) != stamps[name]:
                raise ConfigError(f"--finetuned-from {folder}: {name} does not match the sha256 its entries record")
            found[record["arch_id"]] = {**record, "file": Path(folder) / name, "catalog": str(folder)}
    return found


def _reused(builder: EntryBuilder, earlier: dict) -> tuple[str, dict, dict]:
    """An earlier catalog's fine-tuned weights (`shipped_finetunes`) copied into this build: their name, what the
    fine-tune did, and how they are stored (as that catalog decided and measured it)."""
    name = earlier["weights"]
    (builder.dir / name).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(earlier["file"], builder.dir / name)
    info = {k: earlier[k] for k in ("steps", "target_tokens", "minutes", "valid_loss") if k in earlier}
    kept = ("storage", "fp16_bytes", "delta_bytes", "changed_tensors", "unchanged_tensors", "bleu_fp16", "bleu_delta")
    return name, info, {**{k: earlier[k] for k in kept if k in earlier}, "taken_from": earlier["catalog"]}


def finetune_entries(
    builder: EntryBuilder,
    entries: list[CatalogEntry],
    targets: dict[str, ProfileTarget],
    policy: BuildPolicy,
    say: Callable[[str], None],
    shipped: dict[str, dict] | None = None,
) -> tuple[list[CatalogEntry], list[dict]]:
    """HAT Table 5 on our catalog: fine-tune `finetune_picks` (the `policy.finetune` largest-budget archs of each
    profile) for a fixed number of steps (or minutes); where the mean BLEU rises, every entry of that arch (on any
    profile) is rebuilt from the fine-tuned weights. A pick whose fine-tuned weights an earlier catalog ships
    (`shipped`, by arch id) takes them instead of fine-tuning again. Returns the entries and what was done, kept
    or not."""
    from hat_engine.train.finetune import finetune

    settings, limit = _finetune_settings(policy)
    records = []
    shipped_bytes = 0  # of the fine-tuned weights kept so far (`policy.finetune_max_mb`)
    for e in finetune_picks(entries, policy.finetune, policy.finetune_archs):
        arch_id = e.arch.arch_id()

        def rebuilt(x: CatalogEntry, weights: str) -> CatalogEntry:  # no default: `name` changes below
            target = targets[x.hardware_profile]
            return builder.prepare(x.id, x.arch, target, x.latency_budget_ms, x.predicted_latency_ms, source=weights)

        if arch_id in (shipped or {}):
            name, info, storage = _reused(builder, shipped[arch_id])
            say(f"{arch_id}: fine-tuned weights {name} taken from {storage['taken_from']}, not fine-tuned again")
            tuned = rebuilt(e, name)
        else:
            name = f"finetuned/{arch_id}.pt"
            say(f"fine-tuning {arch_id} ({e.id}) for {limit}")
            info = finetune(builder.dir / SUPERNET_FILE, e.arch, builder.data_dir, policy.finetune_work / arch_id,
                            builder.dir / name, settings)  # fmt: skip
            tuned = rebuilt(e, name)
            storage = {"storage": "fp16", "fp16_bytes": (builder.dir / name).stat().st_size}
            if policy.finetune_delta:
                tuned, name, storage = _as_delta(builder, tuned, name, policy.delta_max_bleu_drop, rebuilt, say)
        kept, size = tuned.mean_bleu > e.mean_bleu, (builder.dir / name).stat().st_size
        over = kept and policy.finetune_max_mb is not None and shipped_bytes + size > policy.finetune_max_mb * 2**20
        kept = kept and not over
        shipped_bytes += size if kept else 0
        note = f"BLEU rose, but past the {policy.finetune_max_mb:g} MB the build may ship" if over else None
        verdict = "kept" if kept else f"not kept ({size / 2**20:.1f} MB more: {note})" if over else "not kept"
        say(f"{arch_id}: BLEU inherited {e.bleu} -> fine-tuned {tuned.bleu}: {verdict}")
        records.append({"arch_id": arch_id, "entry": e.id, **info, "bleu_inherited": e.bleu,
                        "bleu_finetuned": tuned.bleu, "chrf_inherited": e.chrf, "chrf_finetuned": tuned.chrf,
                        "kept": kept, "weights": name if kept else None, **storage,
                        **({"note": note} if note else {})})  # fmt: skip
        if not kept:
            (builder.dir / name).unlink()
            continue
        # the arch's entries on every profile, from the weights kept (the delta where it held BLEU)
        entries = [(tuned if x.id == e.id else rebuilt(x, name)) if x.arch.arch_id() == arch_id else x for x in entries]
    return entries, records


def int8_twins(
    builder: EntryBuilder,
    entries: list[CatalogEntry],
    targets: dict[str, ProfileTarget],
    max_drop: float,
    say: Callable[[str], None],
) -> tuple[list[tuple[CatalogEntry, str]], dict[str, float]]:
    """An int8 twin of every searched entry (not yet timed), from the same weights (inherited or fine-tuned); kept
    where no test set loses more than `max_drop` BLEU. Returns the kept twins, each with its fp32 entry's id, and
    the rejected ones' BLEU drops. BLEU is per arch and weights, so an arch that fails on one profile is not
    scored again on the next."""
    kept, rejected, drops = [], {}, {}
    for e in entries:
        source = (e.artifacts[0].materialize or {}).get("source")  # the fine-tuned weights, where the entry has them
        source = None if source == SUPERNET_FILE else source
        key, twin_id = (e.arch.arch_id(), source), e.id + "-int8"
        if key in drops and drops[key] > max_drop:
            rejected[twin_id] = drops[key]
            continue
        twin = builder.prepare(twin_id, e.arch, targets[e.hardware_profile], e.latency_budget_ms,
                               e.predicted_latency_ms, fmt="onnx-int8", source=source)  # fmt: skip
        drops[key] = round(max(e.bleu[k] - twin.bleu[k] for k in e.bleu), 2)
        say(f"{twin_id}: BLEU drop {drops[key]}")
        if drops[key] <= max_drop:
            kept.append((twin, e.id))
        else:
            rejected[twin_id] = drops[key]
    return kept, rejected
