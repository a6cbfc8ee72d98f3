"""`hat pipeline --preset quick|full --out DIR`: the whole offline job, stage by stage, resuming finished stages.

corpus -> SuperTransformer -> latency dataset per profile -> predictor per profile -> search per profile ->
catalog (entries + baselines, measured and scored) -> validate. Each stage runs the same `hat` command a user
would, and is skipped when its output already exists.
"""

import argparse
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PRESETS = {"quick": Path("configs/pipeline-quick.yaml"), "full": Path("configs/pipeline-full.yaml")}


@dataclass(frozen=True)
class SliceSection:
    train: int
    valid: int
    test: int
    vocab_size: int = 8000


@dataclass(frozen=True)
class LatencySection:
    samples: int
    targets: str
    runs: int
    warmup: int
    extend: int = 2  # times the pipeline doubles the archs before refusing a predictor that cannot rank


@dataclass(frozen=True)
class FitSection:
    test: int
    epochs: int
    features: str
    min_tau: float | None = None


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
        from hat_engine.errors import ConfigError
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
        _hat("latency", "measure", "--samples", samples, "--targets", lat.targets, "--runs", lat.runs,
             "--warmup", lat.warmup, "--supernet", supernet, "--out", out / "latency")  # fmt: skip
        profiles, refused = {}, []
        for dataset in sorted((out / "latency").glob("*.jsonl")):
            predictor = out / "predictors" / f"{dataset.stem}.pt"
            if not predictor.is_file():
                _hat("latency", "fit", "--data", dataset, "--out", predictor, "--test", fit.test, "--epochs",
                     fit.epochs, "--features", fit.features)  # fmt: skip
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


def _hat(*args: object) -> None:
    """Run one stage as `hat ARGS` would, through the stage's own parser (not back through `cli`)."""
    from search_jobs import catalog_cmd, data_build, latency, search, supernet_train

    argv = [str(a) for a in args]
    print(f"$ hat {' '.join(argv)}", flush=True)
    parser = argparse.ArgumentParser(prog="hat")
    commands = parser.add_subparsers(dest="command", required=True)
    for group, stage in (("data", data_build), ("supernet", supernet_train)):
        stage.register(commands.add_parser(group).add_subparsers(dest="action", required=True))
    for stage in (latency, search, catalog_cmd):
        stage.register(commands)
    stage_args = parser.parse_args(argv)
    code = stage_args.run(stage_args)
    if code:
        raise SystemExit(f"hat: error: pipeline stage `hat {' '.join(argv[:2])}` failed (exit {code})")


def _slice_corpus(data: Path, out: Path, sizes: SliceSection) -> None:
    """A custom corpus made of the first N pairs of each real split (train, valid, test)."""
    from hat_engine.data.batching import read_split, splits_with_role

    out.mkdir(parents=True, exist_ok=True)
    for role in ("train", "valid", "test"):
        src, tgt = [], []
        for name in splits_with_role(data, role):
            en, de = read_split(data, name)
            src += en[: getattr(sizes, role)]
            tgt += de[: getattr(sizes, role)]
        (out / f"{role}.en").write_text("\n".join(src) + "\n", encoding="utf-8")
        (out / f"{role}.de").write_text("\n".join(tgt) + "\n", encoding="utf-8")


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


def run(args: argparse.Namespace) -> int:
    preset = PipelineConfig.from_yaml(PRESETS[args.preset].read_text(), str(PRESETS[args.preset]))
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    if not (args.data / "manifest.json").is_file():
        _hat("data", "build", "--out", args.data)
    data = args.data
    if preset.slice is not None:
        data = out / "data"
        if not (data / "manifest.json").is_file():
            _slice_corpus(args.data, out / "slice", preset.slice)
            custom = [f"--{r}-{s}" for r in ("train", "valid", "test") for s in ("src", "tgt")]
            files = [out / "slice" / f"{r}.{lang}" for r in ("train", "valid", "test") for lang in ("en", "de")]
            pairs = [x for pair in zip(custom, files, strict=True) for x in pair]
            _hat("data", "build", "--out", data, "--vocab-size", preset.slice.vocab_size, *pairs)

    supernet = out / "supernet.pt"
    if not supernet.is_file():
        _hat("supernet", "train", "--config", _train_config(preset, out, data), "--resume", "--export", supernet)
    (out / "spm.model").write_bytes((data / "spm.model").read_bytes())

    profiles = _measure_and_fit(preset, out, supernet)

    results = []
    for profile, (dataset, predictor, min_tau) in profiles.items():
        search = preset.search
        result = out / f"search-{profile}.json"
        if not result.is_file():
            budgets = ",".join(f"{b:g}" for b in _budgets(dataset, predictor, search.budgets))
            _hat("search", "--budgets", budgets, "--predictor", predictor, "--supernet", supernet, "--data", data,
                 "--valid-sentences", search.valid_sentences, "--population", search.population,
                 "--parents", search.parents, "--mutations", search.mutations, "--crossovers",
                 search.crossovers, "--generations", search.generations, "--threads", 2,
                 "--min-tau", min_tau, "--fitness-cache", out / "fitness-cache.json", "--out", result)  # fmt: skip
        results += ["--results", result]

    catalog = out / "catalog"
    if not (catalog / "catalog.json").is_file():
        cat = preset.catalog
        extra = ["--eval-limit", cat.eval_limit] if cat.eval_limit is not None else []
        _hat("catalog", "build", *results, "--supernet", supernet, "--data", data, "--out", catalog,
             "--runs", cat.runs, "--rounds", cat.rounds, "--finetune", cat.finetune,
             *(["--finetune-steps", cat.finetune_steps] if cat.finetune_steps is not None
               else ["--finetune-minutes", cat.finetune_minutes]),
             "--finetune-work", out / "finetune", *extra)  # fmt: skip
    _hat("catalog", "validate", catalog)
    print(f"pipeline ({args.preset}) done: {catalog}")
    return 0
