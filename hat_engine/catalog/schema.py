"""The catalog (CONTRACT §3): SubTransformers across latency budgets x hardware profiles, with their evidence.

Typed records, strict loading (unknown or missing keys are errors that name the field), validation of files and
checksums, a table for people, and merging catalogs measured on different hosts. Paths are relative to the
catalog folder.
"""

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from hat_engine.checksums import sha256_file
from hat_engine.config import ArchConfig
from hat_engine.errors import CatalogError, HatError
from hat_engine.latency.timing import Workload
from hat_engine.pareto import pareto_front

SCHEMA_VERSION = 1
CATALOG_FILE = "catalog.json"


def _take(d: Any, cls: type, where: str, optional: tuple[str, ...] = ()) -> dict:
    """The keyword arguments of dataclass `cls` from dict `d`, with unknown and missing keys named."""
    if not isinstance(d, dict):
        raise CatalogError(f"{where}: expected an object, got {type(d).__name__}")
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise CatalogError(f"{where}: unknown key(s) {unknown}")
    missing = sorted(names - set(d) - set(optional))
    if missing:
        raise CatalogError(f"{where}: missing key(s) {missing}")
    return dict(d)


@dataclass(frozen=True)
class FileRef:
    path: str
    sha256: str

    @classmethod
    def parse(cls, d: Any, where: str) -> "FileRef":
        return cls(**_take(d, cls, where))


@dataclass(frozen=True)
class PredictorRef:
    path: str
    sha256: str
    n_train: int
    n_test: int
    mape: float
    kendall_tau: float


@dataclass(frozen=True)
class HardwareProfileRecord:
    id: str
    fingerprint: dict
    predictor: PredictorRef | None = None


@dataclass(frozen=True)
class Artifact:
    """A served file set. `materialize` says how to rebuild it from the catalog's weights when `path` is a
    cache location (CONTRACT §3: arch, source weights' sha256, the sha256 of the materialised weights)."""

    format: str  # "onnx", "onnx-int8" or "torch"
    path: str
    sha256: str
    materialize: dict | None = None


@dataclass(frozen=True)
class CatalogEntry:
    id: str
    hardware_profile: str
    latency_budget_ms: float
    arch: ArchConfig
    params: int
    latency_ms: dict[str, float]  # measured p50, p95 on the reference workload
    predicted_latency_ms: float
    bleu: dict[str, float]
    chrf: dict[str, float]
    artifacts: tuple[Artifact, ...]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["arch"] = self.arch.to_dict()
        d["artifacts"] = [asdict(a) for a in self.artifacts]
        return d

    @property
    def p95(self) -> float:
        return float(self.latency_ms["p95"])

    @property
    def mean_bleu(self) -> float:
        return sum(self.bleu.values()) / max(len(self.bleu), 1)


@dataclass(frozen=True)
class Catalog:
    language_pair: str
    tokenizer: FileRef
    supernet: FileRef
    reference_workload: Workload
    hardware_profiles: tuple[HardwareProfileRecord, ...]
    entries: tuple[CatalogEntry, ...]
    schema_version: int = SCHEMA_VERSION
    extra: dict = field(default_factory=dict)  # free-form: sacrebleu signatures, build commands

    def to_dict(self) -> dict:
        return {
            "schema_version": self.schema_version, "language_pair": self.language_pair,
            "tokenizer": asdict(self.tokenizer), "supernet": asdict(self.supernet),
            "reference_workload": self.reference_workload.to_dict(),
            "hardware_profiles": [asdict(p) for p in self.hardware_profiles],
            "entries": [e.to_dict() for e in self.entries], "extra": self.extra,
        }  # fmt: skip

    def profile(self, profile_id: str) -> HardwareProfileRecord | None:
        return next((p for p in self.hardware_profiles if p.id == profile_id), None)

    def entries_for(self, profile_id: str) -> list[CatalogEntry]:
        return sorted((e for e in self.entries if e.hardware_profile == profile_id), key=lambda e: e.p95)

    def entry(self, entry_id: str) -> CatalogEntry:
        for e in self.entries:
            if e.id == entry_id:
                return e
        raise CatalogError(f"no entry {entry_id!r} in the catalog; `hat catalog show` lists them")


def parse_catalog(d: Any) -> Catalog:
    """A `Catalog` from its JSON form; every schema problem is a CatalogError naming the field."""
    top = _take(d, Catalog, "catalog", optional=("extra",))
    if top["schema_version"] != SCHEMA_VERSION:
        raise CatalogError(
            f"catalog: schema_version {top['schema_version']} is not supported (expected {SCHEMA_VERSION})"
        )
    profiles = []
    for i, p in enumerate(_list(top["hardware_profiles"], "hardware_profiles")):
        raw = _take(p, HardwareProfileRecord, f"hardware_profiles[{i}]", optional=("predictor",))
        pred = raw.get("predictor")
        if pred is not None:
            pred = PredictorRef(**_take(pred, PredictorRef, f"hardware_profiles[{i}].predictor"))
        profiles.append(HardwareProfileRecord(raw["id"], raw["fingerprint"], pred))
    ids = {p.id for p in profiles}
    entries = [parse_entry(e, f"entries[{i}]", ids) for i, e in enumerate(_list(top["entries"], "entries"))]
    if len({e.id for e in entries}) != len(entries):
        raise CatalogError("entries: ids must be unique")
    return Catalog(
        language_pair=top["language_pair"],
        tokenizer=FileRef.parse(top["tokenizer"], "tokenizer"),
        supernet=FileRef.parse(top["supernet"], "supernet"),
        reference_workload=Workload.from_dict(top["reference_workload"]),
        hardware_profiles=tuple(profiles),
        entries=tuple(entries),
        extra=top.get("extra", {}),
    )


def parse_entry(e: Any, where: str, profile_ids: set[str] | None = None) -> CatalogEntry:
    """A `CatalogEntry` from its JSON form (in catalog.json, or a report's baseline or candidate); its profile
    must be one of `profile_ids` where given."""
    raw = _take(e, CatalogEntry, where)
    try:
        arch = ArchConfig.from_dict(raw["arch"])
    except HatError as exc:
        raise CatalogError(f"{where}.arch: {exc}") from exc
    if profile_ids is not None and raw["hardware_profile"] not in profile_ids:
        raise CatalogError(f"{where}: hardware_profile {raw['hardware_profile']!r} is not in hardware_profiles")
    for key in ("p50", "p95"):
        if not isinstance(raw["latency_ms"].get(key), int | float):
            raise CatalogError(f"{where}.latency_ms.{key} must be a number")
    artifacts = tuple(
        Artifact(**_take(a, Artifact, f"{where}.artifacts[{j}]", optional=("materialize",)))
        for j, a in enumerate(_list(raw["artifacts"], f"{where}.artifacts"))
    )
    return CatalogEntry(**{**raw, "arch": arch, "artifacts": artifacts})


def _list(value: Any, where: str) -> list:
    if not isinstance(value, list):
        raise CatalogError(f"{where}: expected a list")
    return value


def load_catalog(folder: Path) -> Catalog:
    path = Path(folder) / CATALOG_FILE
    if not path.is_file():
        raise CatalogError(f"no catalog at {path}; set HAT_CATALOG to a folder holding {CATALOG_FILE}")
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CatalogError(f"{path} is not readable JSON: {exc}") from exc
    return parse_catalog(raw)


def save_catalog(catalog: Catalog, folder: Path) -> Path:
    path = Path(folder) / CATALOG_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(catalog.to_dict(), indent=2, ensure_ascii=False) + "\n")
    tmp.replace(path)
    return path


def verify_file(folder: Path, ref: FileRef | PredictorRef | Artifact, where: str) -> None:
    """The file exists and its sha256 matches the catalog."""
    path = Path(folder) / ref.path
    if not path.is_file():
        raise CatalogError(f"{where}: {path} is missing")
    actual = sha256_file(path)
    if actual != ref.sha256:
        raise CatalogError(f"{where}: {path} has sha256 {actual[:12]}…, the catalog says {ref.sha256[:12]}…")


def dominated(entries: list[CatalogEntry]) -> list[tuple[str, str]]:
    """(dominated, dominating) id pairs within one profile: off the Pareto front of p95 and mean BLEU, each with
    the front entry that is no slower and no worse."""
    front = pareto_front(entries, cost=lambda e: e.p95, quality=lambda e: e.mean_bleu)
    return [
        (a.id, next(b.id for b in front if b.p95 <= a.p95 and b.mean_bleu >= a.mean_bleu))
        for a in entries
        if all(a is not b for b in front)
    ]


def merge(catalogs: list[Catalog]) -> Catalog:
    """One catalog from several built on different hosts: same tokenizer and supernet; profiles and entries
    joined; a profile measured twice keeps the later catalog's record and entries. The build records in
    `extra` are joined alike (`merge_extra`)."""
    if not catalogs:
        raise CatalogError("nothing to merge")
    first = catalogs[0]
    profiles: dict[str, HardwareProfileRecord] = {}
    entries: dict[str, CatalogEntry] = {}
    extra: dict = {}
    for c in catalogs:
        if (c.tokenizer.sha256, c.supernet.sha256) != (first.tokenizer.sha256, first.supernet.sha256):
            raise CatalogError("catalogs to merge must share the tokenizer and supernet (sha256 differ)")
        if c.reference_workload != first.reference_workload:
            raise CatalogError("catalogs to merge must share the reference workload")
        for p in c.hardware_profiles:
            if p.id in profiles:
                entries = {k: e for k, e in entries.items() if e.hardware_profile != p.id}
            profiles[p.id] = p
        entries.update({e.id: e for e in c.entries})
        extra = merge_extra(extra, c.extra, {p.id for p in c.hardware_profiles})
    return Catalog(first.language_pair, first.tokenizer, first.supernet, first.reference_workload,
                   tuple(profiles.values()), tuple(entries.values()), extra=extra)  # fmt: skip


def _not_of(ids, profiles: set[str]) -> list[str]:
    """The entry ids (`PROFILE@...`) of `ids` whose profile is not one of `profiles`."""
    return [i for i in ids if i.split("@")[0] not in profiles]


def merge_extra(earlier: dict, later: dict, later_profiles: set[str]) -> dict:
    """A merged catalog's build records: `later`'s replace `earlier`'s for the profiles `later` measured (entry
    ids name their profile: `PROFILE@...`); the sacrebleu signatures of both are kept (a test set's are the
    same wherever it was scored), and each profile's ONNX format is the catalog's that measured it; any other key
    is the earlier catalog's where it has one."""
    if not earlier:
        return dict(later)
    out = {**later, **earlier}
    out["sacrebleu"] = {**(later.get("sacrebleu") or {}), **(earlier.get("sacrebleu") or {})}
    out["dropped_dominated"] = sorted(_not_of(earlier.get("dropped_dominated", []), later_profiles)
                                      + list(later.get("dropped_dominated", [])))  # fmt: skip
    old, new = earlier.get("int8") or {}, later.get("int8") or {}
    if old or new:
        rejected = old.get("rejected_bleu_drop") or {}
        rejected = {k: rejected[k] for k in _not_of(rejected, later_profiles)}
        out["int8"] = {**old, **new, "kept": _not_of(old.get("kept", []), later_profiles) + new.get("kept", []),
                       "rejected_bleu_drop": {**rejected, **(new.get("rejected_bleu_drop") or {})}}  # fmt: skip
    formats = {k: v for k, v in (earlier.get("onnx_format") or {}).items() if k not in later_profiles}
    if formats or later.get("onnx_format"):
        out["onnx_format"] = {**formats, **(later.get("onnx_format") or {})}
    tuned = [r for r in earlier.get("finetune") or [] if _not_of([r.get("entry", "")], later_profiles)]
    out["finetune"] = tuned + [r for r in later.get("finetune") or [] if r not in tuned]
    return out
