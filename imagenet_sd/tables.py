"""Result tables: one long-format CSV row per (run, evaluation set), and a Markdown pivot for people.

Accuracies are in percent, as the evaluate jobs write them (and as timm's results CSVs have them).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

COLUMNS = [
    "run",
    "clone",
    "training",
    "evalset",
    "synthetic",
    "top1",
    "top5",
    "chance_top1",
    "chance_top5",
    "n_images",
    "n_classes_scored",
    "train_data",
]


def evaluation_rows(eval_files: list[str], runs: dict, evalsets: dict, real_clones=()) -> pd.DataFrame:
    """Rows from the evaluate jobs' JSON files (each names its model and evaluation set). `runs`: per model,
    its clone, training and whether it saw synthetic images only; `real_clones`: clones of real images (their
    held-out sets are real images)."""
    rows = []
    for path in eval_files:
        result = json.loads(Path(path).read_text())
        run, evalset = result["run"], result["evalset"]["name"]
        rows.append(
            {
                "run": run,
                "clone": runs[run]["clone"],
                "training": runs[run]["training"],
                "train_data": "synthetic" if runs[run]["synthetic"] else "real",
                "evalset": evalset,
                "synthetic": "clone" in evalsets[evalset] and evalsets[evalset]["clone"] not in real_clones,
                "top1": result["top1"],
                "top5": result["top5"],
                "chance_top1": 100.0 / result["n_classes_scored"],
                "chance_top5": 100.0 * min(5, result["n_classes_scored"]) / result["n_classes_scored"],
                "n_images": result["n_images"],
                "n_classes_scored": result["n_classes_scored"],
            }
        )
    return pd.DataFrame(rows, columns=COLUMNS).sort_values(["run", "evalset"], kind="stable")


def markdown_pivot(table: pd.DataFrame, evalsets: dict) -> str:
    """Runs as rows, evaluation sets as columns, 'top-1 / top-5' in percent."""
    lines = ["# Evaluation", ""]
    if table.empty:
        return "\n".join(lines + ["No evaluation in this config.", ""])
    cell = table.assign(score=[f"{a:.1f} / {b:.1f}" for a, b in zip(table.top1, table.top5)])
    cell = cell.assign(run=[f"{r} (real)" if d == "real" else r for r, d in zip(cell.run, cell.train_data)])
    pivot = cell.pivot(index="run", columns="evalset", values="score").fillna("")
    names = list(pivot.columns)
    lines.append(
        "Top-1 / top-5 accuracy (%) of each run (rows) on each evaluation set (columns); "
        "the last row is chance level (uniform guessing over the classes scored)."
    )
    lines.append("")
    lines.append("| run | " + " | ".join(names) + " |")
    lines.append("|---|" + "---|" * len(names))
    for run, row in pivot.iterrows():
        lines.append(f"| {run} | " + " | ".join(row[n] for n in names) + " |")
    chance = table.groupby("evalset")[["chance_top1", "chance_top5"]].max()
    lines.append(
        "| *chance* | "
        + " | ".join(f"*{chance.chance_top1[n]:.1f} / {chance.chance_top5[n]:.1f}*" for n in names)
        + " |"
    )
    lines.append("")
    for name in names:
        spec = evalsets[name]
        source = (
            f"held-out synthetic images of clone `{spec['clone']}` (other seeds), not real images"
            if "clone" in spec
            else f"`{spec['path']}`"
        )
        if "clone" in spec and not table[table.evalset == name].synthetic.any():
            source = f"held-out real images of the real clone `{spec['clone']}`"
        text = spec.get("description") or ""
        lines.append(f"- **{name}**: {source}. {text}".rstrip())
    if any(row.n_classes_scored < 5 for row in table.itertuples()):
        lines += ["", "With fewer than 5 classes scored, top-5 is top-k over the classes scored."]
    if table.synthetic.any():
        lines += [
            "",
            "Scores on held-out synthetic images say how well a model fits its own generator, "
            "not how it transfers to real images.",
        ]
    return "\n".join(lines) + "\n"


def main(*, eval_files: list[str], runs: dict, evalsets: dict, csv: str, markdown: str, real_clones=()) -> pd.DataFrame:
    """The evaluation table (the published numbers beside ours: imagenet_sd.reference_tables)."""
    table = evaluation_rows(eval_files, runs, evalsets, real_clones)
    Path(csv).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(csv, index=False, float_format="%.6f")
    Path(markdown).write_text(markdown_pivot(table, evalsets))
    return table
