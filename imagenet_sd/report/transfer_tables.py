"""Transfer tables: one long CSV row per (model, dataset, seed), a Markdown table with datasets as columns
(the mean over the split seeds and their standard deviation) plus the summaries of the authors' suite, and a
radar chart of models x datasets.

Summaries over the sets marked `summary` (ImageNet-1K is not): mean top-1 and mean log-odds, where the
log-odds of an accuracy p is ln(p / (1 - p)) (it weighs a point gained near 100% more than one near 50%).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from imagenet_sd.report.result_tables import TRANSFER_RADAR, Radar, markdown_table, write_table

COLUMNS = [
    "model",
    "training_data",
    "dataset",
    "group",
    "summary",
    "kind",
    "seed",
    "n_train",
    "n_val",
    "n_test",
    "test_fraction",
    "n_classes",
    "chosen",
    "val_top1",
    "top1",
    "mean_per_class",
    "chance_top1",
]


def log_odds(percent: float) -> float:
    p = min(max(percent / 100.0, 1e-4), 1 - 1e-4)
    return math.log(p / (1 - p))


def training_data(spec: dict) -> str:
    return "synthetic only" if spec.get("synthetic") else "real images"


def transfer_rows(files: list[str], models: dict, datasets: dict) -> pd.DataFrame:
    """Rows from probe JSONs at results/models/<model>/transfer/<dataset>/<probe key>/seed<n>.json."""
    rows = []
    for path in map(Path, files):
        model, dataset = path.parents[3].name, path.parents[1].name
        r = json.loads(path.read_text())
        rows.append(
            {
                "model": model,
                "training_data": training_data(models[model]),
                "dataset": dataset,
                "group": datasets[dataset].get("group", ""),
                "summary": datasets[dataset].get("summary", True),
                "kind": r["kind"],
                "seed": r["seed"],
                "n_train": r["n_train"],
                "n_val": r["n_val"],
                "n_test": r["n_test"],
                "test_fraction": r.get("test_fraction"),  # set: the test split is drawn by the seed
                "n_classes": r["n_classes"],
                "chosen": json.dumps(r["chosen"], sort_keys=True),
                "val_top1": r["val_top1"],
                "top1": r["top1"],
                "mean_per_class": r["mean_per_class"],
                "chance_top1": r["chance_top1"],
            }
        )
    return pd.DataFrame(rows, columns=COLUMNS).sort_values(["model", "dataset", "seed"], kind="stable")


def per_set(table: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, dataset): the mean top-1 over its seeds, their standard deviation (n - 1; NaN for
    one seed) and how many there are."""
    return (
        table.groupby(["model", "dataset"], sort=True)
        .agg(
            top1=("top1", "mean"),
            std=("top1", "std"),
            seeds=("seed", "nunique"),
            summary=("summary", "first"),
            group=("group", "first"),
        )
        .reset_index()
    )


def summaries(table: pd.DataFrame) -> pd.DataFrame:
    """Per model: seed-averaged top-1 per dataset, mean and mean log-odds over summary sets, group means."""
    sets = per_set(table)
    out = sets.pivot(index="model", columns="dataset", values="top1")
    counted = sets[sets.summary.astype(bool)]
    out["mean"] = counted.groupby("model").top1.mean()
    out["mean log-odds"] = counted.groupby("model").top1.agg(lambda s: sum(map(log_odds, s)) / len(s))
    for group, members in sets[sets.group != ""].groupby("group"):
        out[f"{group} avg"] = members.groupby("model").top1.mean()
    return out


def cell(name: str, value: float, spread: pd.Series) -> str:
    """A table cell: a dataset's mean top-1 with the standard deviation of its seeds (when there are two or
    more); the summary columns as they are."""
    if pd.isna(value):
        return ""
    if name == "mean log-odds":
        return f"{value:.2f}"
    std = spread.get(name, float("nan"))
    return f"{value:.1f}" if pd.isna(std) else f"{value:.1f} ± {std:.2f}"


def dataset_line(name: str, rows: pd.DataFrame, spec: dict) -> str:
    """What a dataset column is: probe, seeds, split sizes, how its test split is made, and whether it counts."""
    row = rows.iloc[0]
    counted = "counted in the mean" if spec.get("summary", True) else "not counted in the mean"
    seeds = sorted(rows.seed.unique())
    drawn = rows.test_fraction.dropna()
    split = f"test split drawn per seed: {drawn.iloc[0]:.0%} of each class" if len(drawn) else "its own test split"
    return (
        f"- **{name}** ({row.kind} probe; {len(seeds)} seed(s): {', '.join(map(str, seeds))}; {split}; "
        f"{row.n_train} train / {row.n_test} test images, {row.n_classes} classes; {counted}). "
        f"{spec.get('description', '')}"
    ).rstrip()


def transfer_markdown(table: pd.DataFrame, models: dict, datasets: dict) -> str:
    lines = ["# Transfer: linear probes on frozen features", ""]
    if table.empty:
        return "\n".join(lines + ["No transfer probe in this config.", ""])
    wide = summaries(table)
    spread = per_set(table).pivot(index="model", columns="dataset", values="std")
    names = list(wide.columns)
    lines += [
        "Test top-1 (%) of a linear probe on each model's frozen features: the mean over the dataset's split "
        "seeds ± their standard deviation (n - 1; one seed: its value alone); `mean` and `mean log-odds` "
        "(ln p/(1-p)) over the sets marked as counted below, of the seed means; group columns average their "
        "group. The last row is chance (uniform guessing).",
        "",
    ]
    rows = [
        [model, training_data(models[model]), *(cell(n, row[n], spread.loc[model]) for n in names)]
        for model, row in wide.iterrows()
    ]
    lines += markdown_table(["model", "training data", *names], rows)
    chance = table.groupby("dataset").chance_top1.max()
    # the chance row keeps its `| |` for the blank training-data cell (markdown_row writes a blank as `|  |`)
    lines.append("| *chance* | | " + " | ".join(f"*{chance[n]:.1f}*" if n in chance else "" for n in names) + " |")
    lines.append("")
    for name, rows in table.groupby("dataset", sort=True):
        lines.append(dataset_line(name, rows, datasets[name]))
    lines += [
        "",
        "`synthetic only`: the model never saw a real image in training; `real images`: a reference "
        "trained on real data.",
    ]
    return "\n".join(lines) + "\n"


def transfer_radar(table: pd.DataFrame) -> Radar:
    """Models as closed lines over one axis per dataset (top-1, seeds averaged)."""
    title = "Linear-probe top-1 (%)"
    if table.empty:
        return Radar([], {}, title, TRANSFER_RADAR)
    wide = table.groupby(["model", "dataset"]).top1.mean().unstack()
    series = {model: row.tolist() for model, row in wide.iterrows()}
    return Radar(list(wide.columns), series, title, TRANSFER_RADAR)


def write_transfer_tables(
    *, probe_files: list[str], models: dict, datasets: dict, csv: str, markdown: str, png: str
) -> pd.DataFrame:
    table = transfer_rows(probe_files, models, datasets)
    text = transfer_markdown(table, models, datasets)
    return write_table(table, text, csv=csv, markdown=markdown, png=png, radar=transfer_radar(table))
