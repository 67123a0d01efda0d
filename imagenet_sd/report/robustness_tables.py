"""Robustness and representation tables: long-format CSVs, Markdown pivots and spider plots.

robustness.csv has one row per (model, set, kind, perturbation, strength): the clean evaluation of every
set (with its calibration), the clean scores of the images the attacks ran on (kind `clean_subset`: an attack
runs on a fixed subset of the set, whose clean accuracy differs from the whole set's, and an attack's drop is
read against it), every attack at every epsilon, every corruption at every severity and their mean.
representation.csv has one row per (model, set) with each statistic.
Accuracies are in percent, ECE is a fraction in [0, 1], NLL in nats.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from imagenet_sd.evaluate.records import Header, read_record
from imagenet_sd.report.result_tables import Radar, markdown_pivot, markdown_table, model_label, write_table

# Every row of both tables starts with what it is of: the model, what it was trained on, the evaluation set.
ROW_OF = ["model", "train_data", "set"]
METRICS = ("top1", "top5", "ece", "nll", "n_images")
ROBUSTNESS_COLUMNS = [*ROW_OF, "kind", "perturbation", "strength", *METRICS]
# Row order within a (model, set): the subset's clean scores right before the attacks on it.
KIND_ORDER = {"clean": 0, "clean_subset": 1, "adversarial": 2, "corruption": 3}
SUBSET_CLEAN = "clean (attacked subset)"
STATISTICS = ["sparsity", "intra_class_distance", "inter_class_distance", "redundancy", "coding_rate"]
REPRESENTATION_COLUMNS = [*ROW_OF, *STATISTICS, "n_images", "dim"]


def metrics(result: dict) -> dict:
    return {k: result.get(k, float("nan")) for k in METRICS}


def row_of(model: str, evalset: str, kinds: dict) -> dict:
    return {"model": model, "train_data": kinds.get(model, "external"), "set": evalset}


def evaluation_rows(path, kinds: dict) -> list[dict]:
    header, result = read_record(path)
    base = row_of(header.model, header.evalset, kinds)
    if "corruptions" not in result:
        return [{**base, "kind": "clean", "perturbation": "none", "strength": "0", **metrics(result)}]
    rows = [
        {**base, "kind": "corruption", "perturbation": c, "strength": s, **metrics(r)}
        for c, by_severity in result["corruptions"].items()
        for s, r in by_severity.items()
    ]
    rows += [
        {**base, "kind": "corruption", "perturbation": c, "strength": "mean", **metrics(r), "n_images": None}
        for c, r in result["per_corruption"].items()
    ]
    return rows + [{**base, "kind": "corruption", "perturbation": "mean", "strength": "mean", **metrics(result)}]


def attack_row(header: Header, result: dict, kinds: dict, kind: str = "adversarial") -> dict:
    """The attack's row, or (kind `clean_subset`) the clean scores of the subset it attacked."""
    attacked = kind == "adversarial"
    return {
        **row_of(header.model, header.evalset, kinds),
        "kind": kind,
        "perturbation": result["attack"] if attacked else "none",
        "strength": f"{result['epsilon_255']:g}/255" if attacked else "0",
        **metrics(result["adversarial" if attacked else "clean"]),
        "n_images": header.n_images,
    }


def attack_rows(attack_files, kinds: dict) -> list[dict]:
    """Every attack's row and, per (model, set), one row of its attacked subset's clean scores (the same images
    for every attack and epsilon: results on different subsets are an error naming both files)."""
    rows, subsets = [], {}
    for path in attack_files:
        header, result = read_record(path)
        rows.append(attack_row(header, result, kinds))
        first_path, _, first = subsets.setdefault((header.model, header.evalset), (path, header, result))
        if first["subset"] != result["subset"]:
            raise ValueError(
                f"attack results {first_path} and {path} (model {header.model}, set {header.evalset}) are "
                f"on different subsets ({first['subset']} and {result['subset']}): rerun the out-of-date one"
            )
    return rows + [attack_row(header, result, kinds, "clean_subset") for _, header, result in subsets.values()]


def robustness_table(eval_files, attack_files, kinds: dict) -> pd.DataFrame:
    rows = [row for path in eval_files for row in evaluation_rows(path, kinds)]
    table = pd.DataFrame(rows + attack_rows(attack_files, kinds), columns=ROBUSTNESS_COLUMNS)
    order = ["model", "set", "kind", "perturbation", "strength"]
    return table.sort_values(order, kind="stable", key=sort_key)


def strength_value(strength: str) -> float:
    """`2/255` -> 2/255, `3` -> 3, `mean` last: strengths sort by size, not as text (16/255 after 2/255)."""
    number, _, unit = str(strength).partition("/")
    try:
        return float(number) / (float(unit) if unit else 1.0)
    except ValueError:
        return float("inf")


def sort_key(column: pd.Series) -> pd.Series:
    if column.name == "kind":
        return column.map(KIND_ORDER)
    return column.map(strength_value) if column.name == "strength" else column


def attack_column(t: pd.DataFrame) -> pd.Series:
    """`<set> <attack> <eps>/255`, or `<set> clean (attacked subset)` for the attacked subset's clean scores."""
    named = (t.perturbation + " " + t.strength).where(t.kind != "clean_subset", SUBSET_CLEAN)
    return t["set"] + " " + named


def pivot_markdown(table: pd.DataFrame, cell) -> list[str]:
    """A Markdown table: one row per model, one column per value of the `column` column (`cell(row) -> str`)."""
    cells = [(model_label(r.model, r.train_data), r.column, cell(r)) for r in table.itertuples()]
    return [*markdown_pivot(cells, "model"), ""]


def robustness_markdown(table: pd.DataFrame) -> str:
    lines = ["# Robustness", "", "Models marked (real) were trained on real images with the same recipe.", ""]
    sections = [
        (
            ["clean"],
            "Clean evaluation (the whole set): top-1 / top-5 (%), and ECE (15 bins) in brackets.",
            lambda t: t["set"],
            lambda r: f"{r.top1:.1f} / {r.top5:.1f} ({r.ece:.3f})",
        ),
        (
            ["clean_subset", "adversarial"],
            "Adversarial (L-infinity): top-1 (%), and ECE in brackets, on the attack's fixed subset of the set. "
            f"`{SUBSET_CLEAN}` is the same images unperturbed: read an attack's drop against it, not against "
            "the Clean table (the whole set).",
            attack_column,
            lambda r: f"{r.top1:.1f} ({r.ece:.3f})",
        ),
        (
            ["corruption"],
            "Corruptions: top-1 (%) per corruption (mean over severities) and over all.",
            lambda t: t["set"] + " " + t["perturbation"],
            lambda r: f"{r.top1:.1f}",
        ),
    ]
    for kinds, title, column, cell in sections:
        part = table[table.kind.isin(kinds)]
        if kinds == ["corruption"]:
            part = part[part.strength == "mean"]
        if part.empty:
            continue
        lines += [f"## {kinds[-1].capitalize()}", "", title, ""]
        lines += pivot_markdown(part.assign(column=column(part)), cell)
    corrupt = table[(table.kind == "corruption") & (table.strength != "mean")]
    if not corrupt.empty:
        lines += ["Per severity (top-1 %):", ""]
        per = corrupt.assign(column=corrupt["set"] + " " + corrupt.perturbation + " s" + corrupt.strength)
        lines += pivot_markdown(per, lambda r: f"{r.top1:.1f}")
    return "\n".join(lines) + "\n"


def robustness_radar(table: pd.DataFrame) -> Radar:
    """Top-5 of every model on every set: clean, the attacked subset clean, each attack and epsilon, each
    corruption set's mean."""
    part = table[(table.kind != "corruption") | (table.perturbation == "mean")]
    column = part["set"].where(part.kind == "clean", attack_column(part))
    part = part.assign(column=column)
    axes = list(dict.fromkeys(part.column)) or ["none"]
    series = {}
    for (model, kind), rows in part.groupby(["model", "train_data"], sort=True):
        values = dict(zip(rows.column, rows.top5))
        series[model_label(model, kind)] = [values.get(a, float("nan")) for a in axes]
    return Radar(axes, series, "Top-5 (%) per evaluation set and perturbation")


def write_robustness_tables(*, eval_files, attack_files, kinds: dict, csv, markdown, png) -> pd.DataFrame:
    table = robustness_table(eval_files, attack_files, kinds)
    text = robustness_markdown(table)
    return write_table(table, text, csv=csv, markdown=markdown, png=png, radar=robustness_radar(table))


def representation_table(stat_files, kinds: dict) -> pd.DataFrame:
    rows = []
    for path in stat_files:
        result = json.loads(Path(path).read_text())
        row = row_of(result["model"], result["evalset"], kinds)
        rows.append({**row, **{k: result[k] for k in (*STATISTICS, "n_images", "dim")}})
    return pd.DataFrame(rows, columns=REPRESENTATION_COLUMNS).sort_values(["set", "model"], kind="stable")


def reference_model(table: pd.DataFrame, reference: str | None) -> str | None:
    if reference:
        if reference not in set(table.model):
            raise ValueError(
                f"representation.reference: model {reference!r} has no statistics "
                f"(models: {', '.join(sorted(set(table.model)))})"
            )
        return reference
    real = table[table.train_data == "real"].model
    return real.iloc[0] if len(real) else None


def representation_markdown(table: pd.DataFrame) -> str:
    intro = "Statistics of frozen features (docs/representation.md); models marked (real) were trained on real images."
    lines = ["# Representation", "", intro, ""]
    for name, part in table.groupby("set", sort=True):
        rows = [
            [model_label(r.model, r.train_data), *(f"{getattr(r, s):.4f}" for s in STATISTICS)]
            for r in part.itertuples()
        ]
        lines += [f"## {name}", "", *markdown_table(["model", *STATISTICS], rows), ""]
    return "\n".join(lines) + "\n"


def representation_radar(table: pd.DataFrame, ref: str | None) -> Radar:
    """Every (model, set)'s statistics over the reference model's on the same set."""
    series = {}
    for r in table.itertuples():
        base = table[(table.model == ref) & (table["set"] == r.set)] if ref else table.iloc[0:0]
        scale = [base[s].iloc[0] if len(base) else float("nan") for s in STATISTICS]
        series[f"{model_label(r.model, r.train_data)} on {r.set}"] = [
            getattr(r, s) / b if b else float("nan") for s, b in zip(STATISTICS, scale)
        ]
    title = f"Representation statistics / {ref}'s" if ref else "Representation statistics (no real-data reference)"
    return Radar(STATISTICS, series, title)


def write_representation_tables(*, stat_files, kinds: dict, reference: str | None, csv, markdown, png) -> pd.DataFrame:
    table = representation_table(stat_files, kinds)
    radar = representation_radar(table, reference_model(table, reference))
    return write_table(table, representation_markdown(table), csv=csv, markdown=markdown, png=png, radar=radar)
