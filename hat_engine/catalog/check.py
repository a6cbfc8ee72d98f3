"""`hat catalog validate`: schema, files and checksums of a catalog folder, and its Pareto sanity."""

from pathlib import Path

from hat_engine.catalog.schema import Catalog, dominated, load_catalog, verify_file
from hat_engine.checksums import sha256_file
from hat_engine.errors import CatalogError


def validate_catalog(folder: Path, materialized: bool = False) -> tuple[Catalog, list[str]]:
    """The parsed catalog and a list of problems (empty when valid). `materialized` also rebuilds every
    artifact from its recipe into the cache and checks the extracted weights' sha256."""
    catalog = load_catalog(folder)
    problems: list[str] = []

    def check(fn, *args) -> None:
        try:
            fn(*args)
        except CatalogError as exc:
            problems.append(str(exc))

    check(verify_file, folder, catalog.tokenizer, "tokenizer")
    check(verify_file, folder, catalog.supernet, "supernet")
    for p in catalog.hardware_profiles:
        if p.predictor is not None:
            check(verify_file, folder, p.predictor, f"hardware profile {p.id} predictor")
        entries = catalog.entries_for(p.id)
        if not entries:
            problems.append(f"hardware profile {p.id} has no entries")
        for slow, fast in dominated(entries):
            problems.append(f"entry {slow} is dominated by {fast} (slower and no better) in profile {p.id}")
    problems += shared_scores(catalog) + unsigned_scores(catalog)
    for e in catalog.entries:
        for a in e.artifacts:
            recipe = a.materialize
            if recipe is None:
                check(verify_file, folder, a, f"entry {e.id} artifact {a.format}")
                continue
            source = Path(folder) / recipe.get("source", catalog.supernet.path)
            if not source.is_file():
                problems.append(f"entry {e.id}: source weights {source} are missing")
            elif sha256_file(source) != recipe.get("source_sha256", catalog.supernet.sha256):
                problems.append(f"entry {e.id}: source weights {source} do not match their sha256")
            elif materialized:
                from hat_engine.catalog.materialize import materialize

                check(materialize, folder, catalog, e, a.format, Path(folder) / ".cache")
    return catalog, problems


def shared_scores(catalog: Catalog) -> list[str]:
    """Entries of different archs with identical BLEU and chrF on every set: a score reused, not measured (the
    v1 build keyed scores by weights alone, which head counts and cross-attention layers do not change)."""
    seen: dict[tuple, tuple[str, str]] = {}
    problems = []
    for e in catalog.entries:
        if not e.bleu:
            continue
        scores = (tuple(sorted(e.bleu.items())), tuple(sorted(e.chrf.items())))
        other = seen.setdefault(scores, (e.id, e.arch.arch_id()))
        if other[1] != e.arch.arch_id():
            problems.append(f"entries {other[0]} and {e.id} have different archs but share all their scores")
    return problems


def unsigned_scores(catalog: Catalog) -> list[str]:
    """Test sets scored without their own sacrebleu signature, where the catalog records them per set (v2)."""
    signatures = catalog.extra.get("sacrebleu") or {}
    if set(signatures) <= {"bleu", "chrf"}:  # the v1 form: one signature for every set
        return []
    sets = {name for e in catalog.entries for name in e.bleu}
    return [f"test set {name} has scores but no sacrebleu signature" for name in sorted(sets - set(signatures))]


def unreferenced_weights(folder: Path, catalog: Catalog) -> list[str]:
    """Files under `finetuned/` that no entry's recipe names (e.g. an earlier build's): shipped for nothing."""
    used = {a.materialize.get("source") for e in catalog.entries for a in e.artifacts if a.materialize}
    tuned = Path(folder) / "finetuned"
    files = sorted(p.name for p in tuned.iterdir() if p.is_file()) if tuned.is_dir() else []
    return [f"finetuned/{name}" for name in files if f"finetuned/{name}" not in used]
