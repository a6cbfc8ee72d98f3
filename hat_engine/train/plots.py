"""Pictures of training runs (matplotlib, headless)."""

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_training(metrics_path: Path, png_path: Path) -> None:
    """Train NLL of the sampled SubTransformers and validation NLL of the largest/smallest vs target tokens."""
    train, valid = [], {}
    for line in Path(metrics_path).read_text().splitlines():
        record = json.loads(line)
        millions = record["tokens"] / 1e6
        if "train_nll" in record:
            train.append((millions, record["train_nll"]))
        for name, value in record.get("valid", {}).items():
            valid.setdefault(name, []).append((millions, value))
    fig, ax = plt.subplots(figsize=(8, 4.5))
    if train:
        ax.plot(*zip(*train, strict=True), color="0.7", lw=0.8, label="train NLL (sampled SubTransformer)")
    for name, points in sorted(valid.items()):
        ax.plot(*zip(*points, strict=True), marker="o", ms=3, label=f"valid NLL {name}")
    ax.set_xlabel("target tokens trained on (millions)")
    ax.set_ylabel("NLL per token (nats)")
    ax.set_title("SuperTransformer training")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png_path, dpi=110)
    plt.close(fig)


def plot_predictions(measured: list[float], predicted: list[float], title: str, png_path: Path) -> None:
    """Predicted vs measured latency on held-out architectures, with the y = x line."""
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(measured, predicted, s=10, alpha=0.7)
    lo, hi = min(measured + predicted), max(measured + predicted)
    ax.plot([lo, hi], [lo, hi], color="0.5", lw=0.8, ls="--")
    ax.set_xlabel("measured latency (ms)")
    ax.set_ylabel("predicted latency (ms)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(png_path, dpi=110)
    plt.close(fig)
