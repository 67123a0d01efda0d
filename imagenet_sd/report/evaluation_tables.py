"""Result tables: one long-format CSV row per (run, evaluation set), and a Markdown pivot for people.

Accuracies are in percent, as the evaluate jobs write them (and as timm's results CSVs have them).
"""

from __future__ import annotations

import pandas as pd

from imagenet_sd.evaluate.records import read_record
from imagenet_sd.report.result_tables import markdown_pivot, markdown_row, model_label, write_table

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
        header, result = read_record(path)
        run, evalset = header.model, header.evalset
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


def run_budgets(config: dict) -> dict:
    """Per run in the evaluation table (one with `evaluate` sets): the epochs of its training, the images per
    class of its clone (None: every image of a real folder) and its max_steps cap (None: none)."""
    budgets = {}
    for name, run in config.get("runs", {}).items():
        if not run.get("evaluate"):
            continue
        training = config["trainings"][run["training"]]
        budgets[name] = {
            "epochs": training.get("epochs", 100),
            "images_per_class": config["clones"][run["clone"]].get("images_per_class"),
            "max_steps": training.get("max_steps"),
        }
    return budgets


def _budget_of(run: str, b: dict) -> str:
    images = f"{b['images_per_class']:,} images per class" if b["images_per_class"] else "every image of its folder"
    cap = f", stopped at {b['max_steps']:,} steps" if b["max_steps"] else ""
    return f"{run}: {b['epochs']} epochs x {images}{cap}"


def training_budget(budgets: dict) -> str:
    """Whether the runs compared share their number of epochs or their number of images seen (a scaling study
    must say which); empty when the runs share both or there is one run."""
    if len(budgets) < 2:
        return ""
    epochs = {b["epochs"] for b in budgets.values()}
    sizes = {b["images_per_class"] for b in budgets.values()}
    seen = {
        None if not b["images_per_class"] or b["max_steps"] else b["epochs"] * b["images_per_class"]
        for b in budgets.values()
    }
    listing = "; ".join(_budget_of(run, b) for run, b in budgets.items())
    if len(epochs) == 1 and len(sizes) == 1:
        return ""
    if any(b["max_steps"] for b in budgets.values()):
        return f"Training length per run ({listing})."
    if len(epochs) == 1:
        return (
            f"Fixed epochs ({epochs.pop()}), not a fixed image budget: a run on a larger clone sees more images "
            f"({listing})."
        )
    if len(seen) == 1 and None not in seen:
        return (
            f"Fixed image budget, not fixed epochs: every run sees {seen.pop():,} images per class, so a run on "
            f"a larger clone makes fewer passes over it ({listing})."
        )
    return f"Runs differ both in epochs and in images seen ({listing})."


def evaluation_markdown(table: pd.DataFrame, evalsets: dict, budget: str = "") -> str:
    """Runs as rows, evaluation sets as columns, 'top-1 / top-5' in percent."""
    lines = ["# Evaluation", ""]
    if table.empty:
        return "\n".join(lines + ["No evaluation in this config.", ""])
    names = sorted(set(table.evalset))
    cells = [(model_label(r.run, r.train_data), r.evalset, f"{r.top1:.1f} / {r.top5:.1f}") for r in table.itertuples()]
    lines.append(
        "Top-1 / top-5 accuracy (%) of each run (rows) on each evaluation set (columns); "
        "the last row is chance level (uniform guessing over the classes scored)." + (f" {budget}" if budget else "")
    )
    lines.append("")
    chance = table.groupby("evalset")[["chance_top1", "chance_top5"]].max()
    lines += markdown_pivot(cells, "run", names)
    chance_row = [f"*{chance.chance_top1[n]:.1f} / {chance.chance_top5[n]:.1f}*" for n in names]
    lines += [markdown_row(["*chance*", *chance_row]), ""]
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


def write_evaluation_tables(
    *, eval_files: list[str], runs: dict, evalsets: dict, csv: str, markdown: str, real_clones=(), budget: str = ""
) -> pd.DataFrame:
    """The evaluation table; `budget` (training_budget of the config) says whether the runs share their
    epochs or their images seen."""
    table = evaluation_rows(eval_files, runs, evalsets, real_clones)
    return write_table(table, evaluation_markdown(table, evalsets, budget), csv=csv, markdown=markdown)
