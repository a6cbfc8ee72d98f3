"""`hat pipeline --preset quick|full --out DIR`: the whole offline job, stage by stage, resuming finished stages.

corpus -> SuperTransformer -> latency dataset per profile -> predictor per profile -> search per profile ->
catalog (entries + baselines, measured and scored) -> validate. Each stage calls the engine function its `hat`
command calls, with the preset's typed settings, and is skipped when its output already exists.
"""

import argparse
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from hat_engine.errors import ConfigError
from search_jobs.data_build import VOCAB_RANGE

if TYPE_CHECKING:
    from hat_engine.data import BuildOptions

PRESETS = {"quick": Path("configs/pipeline-quick.yaml"), "full": Path("configs/pipeline-full.yaml")}


@dataclass(frozen=True)
class SliceSection:
    train: int
    valid: int
    test: int
    vocab_size: int = 8000

    def __post_init__(self) -> None:
        if min(self.train, self.valid, self.test) < 1 or not VOCAB_RANGE[0] <= self.vocab_size <= VOCAB_RANGE[1]:
            raise ConfigError(f"slice: train, valid and test must be >= 1 pairs and vocab_size {self.vocab_size} "
                              f"within {VOCAB_RANGE[0]}..{VOCAB_RANGE[1]}")  # fmt: skip


@dataclass(frozen=True)
class LatencySection:
    samples: int
    targets: str
    runs: int
    warmup: int
    extend: int = 2  # times the pipeline doubles the archs before refusing a predictor that cannot rank

    def __post_init__(self) -> None:
        if self.samples < 1 or self.runs < 1 or self.warmup < 0 or self.extend < 0:
            raise ConfigError("latency: samples and runs must be >= 1, warmup and extend >= 0")


@dataclass(frozen=True)
class FitSection:
    test: int
    epochs: int
    features: str
    min_tau: float | None = None

    def __post_init__(self) -> None:
        if self.epochs < 1 or (self.min_tau is not None and not -1 <= self.min_tau <= 1):
            raise ConfigError(f"fit: epochs ({self.epochs}) must be >= 1 and min_tau (a Kendall tau) within [-1, 1]")


@dataclass(frozen=True)
class SearchSection:
    budgets: int
    valid_sentences: int
    population: int
    parents: int
    mutations: int
    crossovers: int
    generations: int


@dataclass(frozen=True)
class CatalogSection:
    runs: int
    rounds: int
    finetune: int
    eval_limit: int | None = None
    finetune_steps: int | None = None
    finetune_minutes: float = 8.0
    score_workers: int = 2  # one-thread scoring processes (`hat catalog build --score-workers`)

    def __post_init__(self) -> None:
        if self.runs < 1 or self.rounds < 1:
            raise ConfigError(f"catalog: runs ({self.runs}) and rounds ({self.rounds}) must be at least 1")
        if self.score_workers < 1:
            raise ConfigError(f"catalog: score_workers ({self.score_workers}) must be at least 1")


@dataclass(frozen=True)
class PipelineConfig:
    """A pipeline preset (configs/pipeline-*.yaml), each section typed; an unknown or missing key is an error."""

    space: str
    latency: LatencySection
    fit: FitSection
    search: SearchSection
    catalog: CatalogSection
    train: dict[str, Any] = field(default_factory=dict)  # TrainConfig fields, or `config: FILE` plus overrides
    slice: SliceSection | None = None

    @classmethod
    def from_yaml(cls, text: str, where: str = "pipeline preset") -> "PipelineConfig":
        from hat_engine.config import check_keys
        from hat_engine.train.config import TrainConfig

        raw = yaml.safe_load(text) or {}
        sections = {"latency": LatencySection, "fit": FitSection, "search": SearchSection, "catalog": CatalogSection,
                    "slice": SliceSection}  # fmt: skip
        check_keys(raw, cls, where)
        parsed = {k: (_section(sections[k], v, f"{where}: {k}") if k in sections else v) for k, v in raw.items()}
        allowed = {f.name for f in dataclasses.fields(TrainConfig)} | {"config"}
        unknown = sorted(set(parsed.get("train", {})) - allowed)
        if unknown:
            raise ConfigError(f"{where}: train: unknown key(s) {unknown}")
        return cls(**parsed)


def _section(cls: type, raw: Any, where: str) -> Any:
    from hat_engine.config import check_keys

    check_keys(raw, cls, where)
    return cls(**raw)


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("pipeline", help="the whole offline job end to end (resumes finished stages)")
    p.add_argument("--preset", choices=sorted(PRESETS), required=True)
    p.add_argument("--out", type=Path, required=True, help="working folder; the catalog lands in OUT/catalog")
    p.add_argument("--data", type=Path, default=Path("data"), help="the real corpus (built here if missing)")
    p.set_defaults(run=run)


def _budgets(dataset: Path, predictor: Path, n: int) -> list[float]:
    """`n` budgets from the fastest SubTransformer's predicted latency to the dataset's 92nd percentile."""
    from hat_engine.latency.dataset import dataset_archs, read_dataset
    from hat_engine.latency.predictor import LatencyPredictor
    from hat_engine.search.evolution import budget_ladder, fastest_arch

    _, rows = read_dataset(dataset)
    model = LatencyPredictor.load(predictor)
    return budget_ladder(fastest_arch(model.space, model.predict)[1], dataset_archs(rows)[1], n)


def _measure(lat: LatencySection, samples: int, supernet: Path, out: Path) -> None:
    """The latency dataset of every target in OUT (resumed: archs already measured are kept)."""
    from hat_engine.latency.dataset import build_dataset
    from hat_engine.model.supernet import load_supernet
    from hat_engine.runtime.onnx_graph import build_onnx
    from search_jobs.latency import arch_progress, parse_targets

    targets = parse_targets(lat.targets)
    print(f"pipeline: measuring {samples} archs of {supernet} on {lat.targets} ({lat.runs} runs) -> {out}", flush=True)
    model, _ = load_supernet(supernet)
    with arch_progress(samples) as on_arch:
        paths = build_dataset(model, targets, out, samples, build_onnx, runs=lat.runs, warmup=lat.warmup,
                              on_arch=on_arch)  # fmt: skip
    for target, path in paths.items():
        print(f"{target.backend} {target.threads}t -> {path}")


def _fit(dataset: Path, predictor: Path, fit: FitSection) -> None:
    from hat_engine.latency.profile_fit import fit_profile
    from search_jobs.latency import print_fit

    print(f"pipeline: fitting the predictor of {dataset.stem} ({fit.features} features) -> {predictor}", flush=True)
    print_fit(fit_profile(dataset, predictor, fit.features, fit.test, fit.epochs))


def _measure_and_fit(preset: PipelineConfig, out: Path, supernet: Path) -> dict[str, tuple[Path, Path, float]]:
    """Latency dataset and predictor per profile: {profile: (dataset, predictor, tau floor)}. A predictor that
    ranks its held-out archs below the floor is not searched with: the pipeline measures twice as many archs
    (`latency.extend` times, default 2) and refits; then it stops with the predictor's one-line refusal."""
    from hat_engine.errors import UnusablePredictorError
    from hat_engine.latency.predictor import MIN_KENDALL_TAU, LatencyPredictor, require_usable

    lat, fit = preset.latency, preset.fit
    floor = MIN_KENDALL_TAU if fit.min_tau is None else float(fit.min_tau)
    samples, extensions = lat.samples, lat.extend
    for attempt in range(extensions + 1):
        _measure(lat, samples, supernet, out / "latency")
        profiles, refused = {}, []
        for dataset in sorted((out / "latency").glob("*.jsonl")):
            predictor = out / "predictors" / f"{dataset.stem}.pt"
            if not predictor.is_file():
                _fit(dataset, predictor, fit)
            try:
                require_usable(LatencyPredictor.load(predictor), floor, str(predictor))
            except UnusablePredictorError as exc:
                refused.append(str(exc))
                predictor.unlink()  # refitted on the larger dataset
                continue
            profiles[dataset.stem] = (dataset, predictor, floor)
        if not refused:
            return profiles
        if attempt < extensions:
            print(
                f"pipeline: {len(refused)} predictor(s) below the Kendall tau floor {floor:g}; measuring "
                f"{samples} more archs and refitting ({attempt + 1} of {extensions}): {refused[0]}",
                flush=True,
            )
            samples *= 2
    raise SystemExit(f"hat: error: pipeline stopped before the search: {refused[0]}")


def _build_corpus(opts: "BuildOptions") -> None:
    from hat_engine.data import build_corpus
    from search_jobs.data_build import print_corpus

    print(f"pipeline: building the corpus in {opts.out}", flush=True)
    print_corpus(build_corpus(opts, step=lambda name: print(f"pipeline: corpus: {name} …", flush=True)), opts.out)


def _slice_corpus(data: Path, out: Path, sizes: SliceSection) -> dict[str, Path]:
    """A custom corpus made of the first N pairs of each real split (train, valid, test): its files by
    `BuildOptions.custom` key."""
    from hat_engine.data.batching import read_split, splits_with_role

    out.mkdir(parents=True, exist_ok=True)
    files = {}
    for role in ("train", "valid", "test"):
        src, tgt = [], []
        for name in splits_with_role(data, role):
            en, de = read_split(data, name)
            src += en[: getattr(sizes, role)]
            tgt += de[: getattr(sizes, role)]
        for side, lang, lines in (("src", "en", src), ("tgt", "de", tgt)):
            files[f"{role}-{side}"] = out / f"{role}.{lang}"
            files[f"{role}-{side}"].write_text("\n".join(lines) + "\n", encoding="utf-8")
    return files


def _train_config(preset: PipelineConfig, out: Path, data: Path) -> Path:
    train = dict(preset.train)
    if "config" in train:
        base = yaml.safe_load(Path(train.pop("config")).read_text())
    else:
        base = {}
    # the pipeline's own corpus build holds the tokenizer, and its supernet goes where the pipeline says
    base.update(train, data_dir=str(data), space=preset.space, out_dir=str(out / "supernet"))
    base.update(tokenizer=None, export=None)
    path = out / "supernet.yaml"
    path.write_text(yaml.safe_dump(base))
    return path


def _search(profile: str, dataset: Path, predictor: Path, min_tau: float, preset: PipelineConfig, out: Path,
            supernet: Path, data: Path) -> Path:  # fmt: skip
    """The search results of one profile (searched unless OUT/search-PROFILE.json exists)."""
    from hat_engine.search.evolution import EvolutionConfig
    from hat_engine.search.job import SearchJob, run_search
    from search_jobs.search import print_generation, print_results

    result = out / f"search-{profile}.json"
    if result.is_file():
        return result
    s = preset.search
    evolution = EvolutionConfig(population=s.population, parents=s.parents, mutations=s.mutations,
                                crossovers=s.crossovers, generations=s.generations)  # fmt: skip
    budgets = tuple(_budgets(dataset, predictor, s.budgets))
    job = SearchJob(predictor=predictor, supernet=supernet, out=result, budgets=budgets, data=data,
                    evolution=evolution, valid_sentences=s.valid_sentences, threads=2, min_tau=min_tau,
                    fitness_cache=out / "fitness-cache.json")  # fmt: skip
    shown = ", ".join(f"{b:g}" for b in budgets)
    print(f"pipeline: searching profile {profile} (budgets {shown} ms) -> {result}", flush=True)
    print_results(run_search(job, print_generation(s.generations), say=lambda line: print(line, flush=True)), result)
    return result


def _build_catalog(results: list[Path], preset: PipelineConfig, out: Path, supernet: Path, data: Path) -> None:
    from rich.console import Console

    from hat_engine.catalog.build import EntryBuilder
    from hat_engine.catalog.policy import BuildPolicy, build_catalog
    from hat_engine.search.results import SearchResults

    cat, catalog = preset.catalog, out / "catalog"
    policy = BuildPolicy(finetune=cat.finetune, finetune_minutes=cat.finetune_minutes,
                         finetune_steps=cat.finetune_steps, finetune_work=out / "finetune",
                         score_workers=cat.score_workers)  # fmt: skip
    print(f"pipeline: building the catalog in {catalog} from {', '.join(map(str, results))}", flush=True)
    builder = EntryBuilder(catalog, supernet, supernet.parent / "spm.model", data, runs=cat.runs, rounds=cat.rounds,
                           eval_limit=cat.eval_limit)  # fmt: skip
    searches = [SearchResults.load(path) for path in results]
    built = build_catalog(builder, searches, policy, say=Console(stderr=True).print)
    print(f"wrote {catalog / 'catalog.json'} ({len(built.entries)} entries), report.json and REPORT.md")


def run(args: argparse.Namespace) -> int:
    from hat_engine.data import BuildOptions
    from search_jobs.catalog_cmd import validate
    from search_jobs.supernet_train import TrainOptions, train_supernet

    preset = PipelineConfig.from_yaml(PRESETS[args.preset].read_text(), str(PRESETS[args.preset]))
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    if not (args.data / "manifest.json").is_file():
        _build_corpus(BuildOptions(out=args.data))
    data = args.data
    if preset.slice is not None:
        data = out / "data"
        if not (data / "manifest.json").is_file():
            custom = _slice_corpus(args.data, out / "slice", preset.slice)
            _build_corpus(BuildOptions(out=data, custom=custom, vocab_size=preset.slice.vocab_size))

    supernet = out / "supernet.pt"
    if not supernet.is_file():
        config = _train_config(preset, out, data)
        print(f"pipeline: supernet train {config} (resumes {out / 'supernet'}) -> {supernet}", flush=True)
        train_supernet(config, TrainOptions(resume=True, export=supernet))
    (out / "spm.model").write_bytes((data / "spm.model").read_bytes())

    profiles = _measure_and_fit(preset, out, supernet)
    results = [_search(profile, dataset, predictor, min_tau, preset, out, supernet, data)
               for profile, (dataset, predictor, min_tau) in profiles.items()]  # fmt: skip
    catalog = out / "catalog"
    if not (catalog / "catalog.json").is_file():
        _build_catalog(results, preset, out, supernet, data)
    print(f"pipeline: validating {catalog}", flush=True)
    validate(catalog)
    print(f"pipeline ({args.preset}) done: {catalog}")
    return 0
