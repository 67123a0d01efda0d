"""Published numbers (data/references.tsv) beside ours: which result row a reference belongs to, and by how much
we differ from it.

A reference row states the facts it was measured under: the subject (a model trained on a synthetic clone,
the released checkpoint, a real-ImageNet ResNet-50 of torchvision or timm), the class set, the generator's
guidance, the prompt recipe family, the images-per-class multiplier (`scale`), the kind of evaluation set,
the attack protocol (imagenet_sd.evaluate.protocols) and the metric. A blank fact matches any value. A result row
gets its facts from the config of its model (`reference_facts`: a run's clone, or an external model's
`published_as`) and evaluation set, or from its own columns of the same names (an attack row's protocol).
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from imagenet_sd.config import ConfigError, entry_schema
from imagenet_sd.evaluate.protocols import parse_protocol, same_protocol

REFERENCES = Path(__file__).resolve().parents[2] / "data" / "references.tsv"
FACTS = ("subject", "class_set", "guidance", "recipe", "scale", "eval_kind", "protocol")
COLUMNS = (*FACTS, "metric", "value", "provenance", "current", "source", "note")
RUN_SUBJECTS = ("synthetic-run", "real-run")
PROVENANCE = ("from_paper", "secondary")
# A subject that names torchvision weights holds for those weights only (the V1 and V2 ResNet-50s differ by
# 4.7 points of top-1 and far more under attack).
SUBJECT_WEIGHTS = {"torchvision-resnet50-v1": "ResNet50_Weights.IMAGENET1K_V1"}
# Images per class of the paper's 1x clones (about the size of an ImageNet class; a secondary report):
# a clone's `scale` is its images_per_class over this.
PAPER_IMAGES_PER_CLASS = 1300


def _allowed(section: str, key: str) -> set[str]:
    """Values the config schema allows for a reference key (the schema is the one list of them)."""
    return {v for v in entry_schema(section)["properties"][key]["enum"] if v is not None}


def subjects() -> set[str]:
    """Subjects a reference may name: our runs, and the published models `models.<name>.published_as` allows."""
    return set(RUN_SUBJECTS) | _allowed("models", "published_as")


def check_published_as(where: str, spec: dict) -> None:
    """ConfigError when an external model claims the numbers of weights other than its own."""
    weights = SUBJECT_WEIGHTS.get(spec.get("published_as"))
    if weights and spec.get("weights") != weights:
        raise ConfigError(
            f"{where}.published_as: {spec['published_as']} numbers were measured on {weights}, not on "
            f"{spec.get('weights') or spec.get('checkpoint')}"
        )


def _check_row(where: str, row: pd.Series) -> None:
    for column in ("value", "guidance", "scale"):
        try:
            if row[column] != "" or column == "value":
                float(row[column])
        except ValueError:
            raise ConfigError(f"{where}: {column} {row[column]!r} is not a number") from None
    try:
        parse_protocol(row["protocol"])
    except ValueError as error:
        raise ConfigError(f"{where}: protocol {row['protocol']!r}: {error}") from None
    if not row["metric"] or not row["source"]:
        raise ConfigError(f"{where}: every reference needs a metric and a source")


def load_references(path: str | Path = REFERENCES) -> pd.DataFrame:
    """The references table, checked: ConfigError naming the file, line and column of a bad value."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"references table not found: {path}")
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    missing = set(COLUMNS) - set(table.columns)
    if missing:
        raise ConfigError(f"references table {path}: missing column(s) {sorted(missing)}")
    allowed = {
        "subject": subjects(),
        "provenance": set(PROVENANCE),
        "current": {"yes", "no"},
        "class_set": _allowed("class_sets", "reference") | {""},
        "eval_kind": _allowed("evalsets", "kind") | {""},
    }
    for i, row in table.iterrows():
        where = f"references table {path}, line {i + 2}"
        for column, values in allowed.items():
            if row[column] not in values:
                raise ConfigError(f"{where}: {column} {row[column]!r} is not one of {sorted(values)}")
        _check_row(where, row)
    current = table[table.current == "yes"]
    twins = current[current.duplicated([*FACTS, "metric"], keep=False)]
    if len(twins):
        lines = ", ".join(str(i + 2) for i in twins.index)
        raise ConfigError(
            f"references table {path}: lines {lines} are current references for the same facts; "
            "mark all but one `current: no`"
        )
    return table


def one_guidance(generator: dict) -> float | None:
    """A generator's guidance scale; None for a mixture of scales, which no published number was made with."""
    value = generator["guidance_scale"]
    return None if isinstance(value, list) else value


def _run_facts(config: dict, run: dict, images_per_class: int) -> dict:
    clone = config["clones"][run["clone"]]
    generator = config.get("generators", {}).get(clone.get("generator"))
    recipe = config.get("recipes", {}).get(clone.get("recipe"))
    return {
        "subject": "synthetic-run" if generator else "real-run",
        "class_set": config["class_sets"][clone["class_set"]].get("reference"),
        "guidance": one_guidance(generator) if generator else None,
        "recipe": recipe.get("family") if recipe else None,
        "scale": clone["images_per_class"] / images_per_class if "images_per_class" in clone else None,
    }


def _external_facts(config: dict, spec: dict) -> dict:
    """An external model is the published model its `published_as` names (none: no reference matches it)."""
    return {
        "subject": spec.get("published_as"),
        "class_set": config["class_sets"][spec["class_set"]].get("reference"),
        "guidance": None,
        "recipe": None,
        "scale": None,
    }


def reference_facts(config: dict, images_per_class: int = PAPER_IMAGES_PER_CLASS) -> dict:
    """What a reference can be matched on, per model (every run, and every `models` entry) and per evaluation
    set of a validated config (small and JSON-able, for a rule's params)."""
    models = {name: _run_facts(config, run, images_per_class) for name, run in config.get("runs", {}).items()}
    for name, spec in config.get("models", {}).items():
        check_published_as(f"models.{name}", spec)
        models[name] = _external_facts(config, spec)
    evalsets = {name: spec.get("kind") for name, spec in config.get("evalsets", {}).items()}
    return {"models": models, "evalsets": evalsets}


def _same(fact: str, wanted: str, have) -> bool:
    if wanted == "":
        return True
    if have is None or (isinstance(have, float) and math.isnan(have)) or have == "":
        return False
    if fact in ("guidance", "scale"):
        return math.isclose(float(wanted), float(have), rel_tol=1e-6)
    if fact == "protocol":
        return same_protocol(wanted, have)
    return str(have) == wanted


def _row_facts(row: pd.Series, facts: dict) -> dict:
    """A result row's facts: its own fact columns first, then its model's and evaluation set's. The model is
    the row's `model` (or, in the evaluation table, `run`) column."""
    own = {f: row[f] for f in FACTS if f in row.index and not pd.isna(row[f])}
    model = row["model"] if "model" in row.index else row.get("run")
    found = facts.get("models", {}).get(model, {})
    kind = facts.get("evalsets", {}).get(row.get("evalset"))
    return {**found, **({"eval_kind": kind} if kind else {}), **own}


def best_reference(references: pd.DataFrame, have: dict, metric: str) -> pd.Series | None:
    """The current reference matching these facts and metric; the most specific (fewest blanks) wins, then
    one read from the paper, then the first in the file."""
    candidates = references[(references.current == "yes") & (references.metric == metric)]
    matching = [r for _, r in candidates.iterrows() if all(_same(f, r[f], have.get(f)) for f in FACTS)]
    if not matching:
        return None
    return max(matching, key=lambda r: (sum(r[f] != "" for f in FACTS), r["provenance"] == "from_paper"))


def long_format(table: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """One (metric, value) per row: a table with metric columns (top1, top5, ...) is melted."""
    if "metric" in table.columns and "value" in table.columns:
        return table.copy()
    present = [m for m in metrics if m in table.columns]
    keep = [c for c in table.columns if c not in present]
    return table.melt(id_vars=keep, value_vars=present, var_name="metric", value_name="value").reset_index(drop=True)


def attach_references(table: pd.DataFrame, facts: dict, references: pd.DataFrame | None = None) -> pd.DataFrame:
    """The table in long format (one metric per row) with `reference`, `reference_source` and `difference`
    (ours minus the reference, in the metric's units) where a published number matches the row; NaN elsewhere.

    `facts` comes from `reference_facts(config)`; a row's own columns named like FACTS override it.
    """
    references = load_references() if references is None else references
    long = long_format(table, sorted(set(references.metric)))
    found = [best_reference(references, _row_facts(row, facts), row["metric"]) for _, row in long.iterrows()]
    long["reference"] = [float(r["value"]) if r is not None else math.nan for r in found]
    long["reference_source"] = [
        f"{r['source']} ({r['provenance']}; {r['note']})" if r is not None else "" for r in found
    ]
    long["difference"] = long["value"] - long["reference"]
    return long
