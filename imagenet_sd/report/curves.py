"""Training curves from a run's metrics.jsonl (loss, learning rate and, when logged, train top-1, per step),
and an adaptation's loss curves from its losses.jsonl."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on cluster nodes
import matplotlib.pyplot as plt  # noqa: E402

TOP1_KEYS = ("train_top1", "top1")


def read_metrics(path: str | Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def series(records: list[dict], event: str, key: str) -> tuple[list, list]:
    points = [(r["step"], r[key]) for r in records if r.get("event") == event and r.get(key) is not None]
    return [p[0] for p in points], [p[1] for p in points]


def save(fig, output: str | Path) -> None:
    fig.tight_layout()
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output)
    plt.close(fig)


def adaptation_curves(losses: str | Path, output: str | Path, title: str) -> list[str]:
    """One panel per phase of an adaptation (VAE, UNet): its loss at every step, on a log scale."""
    records = read_metrics(losses)
    phases = [p for p in ("vae", "unet") if any(r["phase"] == p for r in records)]
    labels = {"vae": "VAE: reconstruction + KL", "unet": "UNet: noise prediction (MSE)"}
    fig, axes = plt.subplots(1, max(len(phases), 1), figsize=(4.2 * max(len(phases), 1), 3.2), dpi=100, squeeze=False)
    for ax, phase in zip(axes[0], phases):
        points = [(r["step"], r["loss"]) for r in records if r["phase"] == phase]
        ax.plot(*zip(*points), marker="." if len(points) < 50 else None)
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_title(labels[phase], fontsize=10)
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=11)
    save(fig, output)
    return phases


def training_curves(metrics: str | Path, output: str | Path, title: str) -> list[str]:
    """One PNG with a panel per logged quantity; returns the panels drawn."""
    records = read_metrics(metrics)
    top1 = next((k for k in TOP1_KEYS if any(k in r for r in records)), None)
    panels = [("loss", "loss (cross-entropy over crops)"), ("lr", "learning rate")]
    if top1:
        panels.append((top1, "train top-1 (%)"))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.2), dpi=100, squeeze=False)
    for ax, (key, label) in zip(axes[0], panels):
        x, y = series(records, "step", key)
        ax.plot(x, y, marker="." if len(x) < 50 else None, label="logged steps")
        ex, ey = series(records, "epoch", key)
        if ey:
            ax.plot(ex, ey, "o--", label="epoch mean")
        ax.set_xlabel("step")
        ax.set_title(label, fontsize=10)
        ax.grid(alpha=0.3)
        if ey:
            ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=11)
    save(fig, output)
    return [key for key, _ in panels]
