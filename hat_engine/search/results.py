"""What `hat search` hands to `hat catalog build`: the typed search results file, one per hardware profile."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hat_engine.config import ArchConfig
from hat_engine.errors import ConfigError


@dataclass(frozen=True)
class BudgetResult:
    """The SubTransformer the search kept for one latency budget."""

    budget_ms: float
    arch: ArchConfig
    predicted_latency_ms: float
    fitness: float
    evaluations: int = 0
    minutes: float = 0.0
    history: list = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"budget_ms": self.budget_ms, "arch": self.arch.to_dict(), "arch_id": self.arch.arch_id(),
                "predicted_latency_ms": self.predicted_latency_ms, "fitness": self.fitness,
                "evaluations": self.evaluations, "minutes": self.minutes, "history": self.history}  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BudgetResult:
        return cls(float(d["budget_ms"]), ArchConfig.from_dict(d["arch"]), float(d["predicted_latency_ms"]),
                   float(d["fitness"]), int(d.get("evaluations", 0)), float(d.get("minutes", 0.0)),
                   list(d.get("history", [])))  # fmt: skip


@dataclass(frozen=True)
class SearchResults:
    settings: dict[str, Any]  # the search's settings: supernet, predictor, budgets, evolution, fitness subset
    search: dict[str, Any]  # its cost: budgets, generations, population, minutes, evaluations
    results: tuple[BudgetResult, ...]

    @property
    def predictor(self) -> Path:
        return Path(self.settings["predictor"])

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"settings": self.settings, "search": self.search, "results": [r.to_dict() for r in self.results]}
        path.write_text(json.dumps(payload, indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> SearchResults:
        try:
            raw = json.loads(Path(path).read_text())
            return cls(raw["settings"], raw["search"], tuple(BudgetResult.from_dict(r) for r in raw["results"]))
        except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{path}: not a `hat search` results file ({exc}); run `hat search` again") from exc
