"""results/tables/references.{csv,md}: every measured number that has a published counterpart, beside it.

Rows come from the evaluate and attack jobs' own JSON files: per (model, evaluation set) its clean top-1,
top-5, ECE and NLL; per (model, set, attack, epsilon) the adversarial ones, named after the attack's method
(`fgsm_top1`, `pgd_top1`, ...) and carrying the protocol the attack ran with (imagenet_sd.evaluate.protocols), so a
published attack number sits only beside the attack that reproduces its protocol.
"""

from __future__ import annotations

import pandas as pd

from imagenet_sd.evaluate.protocols import protocol
from imagenet_sd.evaluate.records import read_record
from imagenet_sd.report.references import attach_references, load_references
from imagenet_sd.report.result_tables import markdown_table, write_table

CLEAN_METRICS = ("top1", "top5", "ece", "nll")
COLUMNS = ["model", "evalset", "attack", "epsilon_255", "protocol", "metric", "value", "n_images"]


def evaluation_rows(path) -> list[dict]:
    header, result = read_record(path)
    base = {"model": header.model, "evalset": header.evalset, "n_images": header.n_images}
    return [{**base, "metric": m, "value": result[m]} for m in CLEAN_METRICS if m in result]


def attack_rows(path) -> list[dict]:
    """The adversarial scores of one attack job, with the protocol its recorded settings and epsilon give."""
    header, result = read_record(path)
    method = result["settings"]["method"]
    base = {
        "model": header.model,
        "evalset": header.evalset,
        "attack": result["attack"],
        "epsilon_255": result["epsilon_255"],
        "protocol": protocol(result["settings"], result["epsilon_255"]),
        "n_images": header.n_images,
    }
    adversarial = result["adversarial"]
    return [{**base, "metric": f"{method}_{m}", "value": adversarial[m]} for m in CLEAN_METRICS if m in adversarial]


def result_rows(eval_files, attack_files) -> pd.DataFrame:
    rows = [row for path in eval_files for row in evaluation_rows(path)]
    rows += [row for path in attack_files for row in attack_rows(path)]
    table = pd.DataFrame(rows, columns=COLUMNS)
    return table.sort_values(
        ["model", "evalset", "attack", "epsilon_255", "metric"], kind="stable", na_position="first"
    )


def references_table(eval_files, attack_files, facts: dict, references: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every result row whose metric some reference has, with `reference`, `reference_source` and `difference`
    (NaN where no published number matches the row's facts)."""
    references = load_references() if references is None else references
    rows = result_rows(eval_files, attack_files)
    rows = rows[rows.metric.isin(set(references.metric))].reset_index(drop=True)
    return attach_references(rows, facts, references)


COLUMNS_SHOWN = ["model", "set", "attack", "metric", "ours", "published", "difference", "n", "source"]


def reference_cells(r, sources: list[str]) -> list[str]:
    """A matched row's cells; `source` is the number of its source in the list under the table."""
    attack = "" if pd.isna(r.attack) else f"{r.attack} {r.epsilon_255:g}/255"
    n = "" if pd.isna(r.n_images) else f"{int(r.n_images)}"
    return [
        r.model,
        r.evalset,
        attack,
        r.metric,
        f"{r.value:.3f}",
        f"{r.reference:g}",
        f"{r.difference:+.3f}",
        n,
        f"[{sources.index(r.reference_source) + 1}]",
    ]


def references_markdown(table: pd.DataFrame) -> str:
    lines = ["# Published numbers beside ours", ""]
    matched = table[table.reference.notna()]
    if matched.empty:
        hint = (
            "No published number matches a result of this config. Numbers are matched on "
            "`class_sets.<name>.reference`, `evalsets.<name>.kind` and, for external models, "
            "`models.<name>.published_as` (docs/references.md)."
        )
        return "\n".join(lines + [hint, ""])
    sources = list(dict.fromkeys(matched.reference_source))
    lines += [
        "Ours minus published, in the metric's units (top-1 in %, ECE a fraction, NLL in nats). An attack row "
        "gets a published number only when it ran the published protocol; `n` is the number of images we "
        "scored (the source says how many the published number used).",
        "",
    ]
    lines += markdown_table(COLUMNS_SHOWN, (reference_cells(r, sources) for r in matched.itertuples()))
    lines += ["", "Sources:", ""] + [f"{i}. {source}" for i, source in enumerate(sources, 1)]
    return "\n".join(lines) + "\n"


def write_reference_tables(*, eval_files, attack_files, facts: dict, csv, markdown) -> pd.DataFrame:
    table = references_table(eval_files, attack_files, facts)
    return write_table(table, references_markdown(table), csv=csv, markdown=markdown)
