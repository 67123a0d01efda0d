"""The pages of `snakemake --report` a config makes and what each sheet reads: contact sheets, side-by-side
comparisons, generation statistics, training and adaptation curves, and the registered tables and figures
(imagenet_sd.report.report: TABLES, FIGURES). Snakemake-free, like every planner: rules/common.smk
calls in with the config, the plan and the report settings (imagenet_sd.report.report.report_settings).

A sheet reads only the first train chunk of each class it shows, never a whole clone.
"""

from __future__ import annotations

from collections.abc import Callable

from imagenet_sd import paths
from imagenet_sd.planning import adaptation as AP
from imagenet_sd.planning.clones import Plan
from imagenet_sd.planning.outputs import generated_clones
from imagenet_sd.planning.sheets import ClassEntry
from imagenet_sd.report.contact_sheets import sample_indices
from imagenet_sd.report.report import FIGURES, TABLES


# ---- contact sheets --------------------------------------------------------------------------------
def sheet_classes(plan: Plan, settings: dict, clone: str) -> list[tuple[int, ClassEntry]]:
    """The fixed sample of classes a contact sheet shows: evenly spaced over the clone's class sheet."""
    classes = plan.clones[clone].classes
    return [(i, classes[i]) for i in sample_indices(len(classes), settings["sheet_classes"])]


def first_chunk(plan: Plan, clone: str, entry: ClassEntry) -> str:
    c = plan.clones[clone]
    start, stop = c.chunks("train")[0]
    return paths.chunk(c.generator_key, c.recipe_key, "train", entry.key, start, stop)


def class_prompts(plan: Plan, clone: str, entry: ClassEntry) -> str:
    return paths.PROMPTS.format(recipe_key=plan.clones[clone].recipe_key, ckey=entry.key)


def sheet_inputs(plan: Plan, settings: dict, clone: str) -> dict[str, list[str]]:
    """Only the first train chunk of each sampled class (and its prompt file), never the whole clone."""
    sample = sheet_classes(plan, settings, clone)
    return {
        "chunks": [first_chunk(plan, clone, e) for _, e in sample],
        "prompts": [class_prompts(plan, clone, e) for _, e in sample],
    }


def sheet_params(plan: Plan, settings: dict, clone: str) -> dict:
    c = plan.clones[clone]
    return {
        "title": f"clone {c.name}: recipe {c.recipe}, generator {c.generator}",
        "classes": [
            {
                "index": i,
                "wnid": e.wnid,
                "chunk": first_chunk(plan, clone, e),
                "prompts": class_prompts(plan, clone, e),
            }
            for i, e in sheet_classes(plan, settings, clone)
        ],
    }


def quality_sheet_chunks(plan: Plan, clone: str) -> dict[str, str]:
    """wnid -> first train chunk of every class of the clone (the sheet reads those of the classes it shows)."""
    return {e.wnid: first_chunk(plan, clone, e) for e in plan.clones[clone].classes}


# ---- side-by-side comparisons -------------------------------------------------------------------------
def comparison_groups(config: dict, plan: Plan) -> dict[str, list[str]]:
    """Class sets drawn by two or more clones that differ in recipe or generator -> those clones (the first
    clone of each (recipe, generator) pair stands for the others: they share their images)."""
    groups = {}
    for name, c in generated_clones(plan).items():
        groups.setdefault(config["clones"][name]["class_set"], {}).setdefault((c.recipe_key, c.generator_key), name)
    return {cs: sorted(by_key.values()) for cs, by_key in groups.items() if len(by_key) > 1}


def comparison_chunks(config: dict, plan: Plan, settings: dict, class_set: str) -> list[str]:
    clones = comparison_groups(config, plan)[class_set]
    return [first_chunk(plan, clone, e) for clone in clones for _, e in sheet_classes(plan, settings, clone)]


def comparison_params(config: dict, plan: Plan, settings: dict, class_set: str) -> dict:
    clones = comparison_groups(config, plan)[class_set]
    return {
        "title": f"class set {class_set}: " + " vs ".join(clones),
        "clones": {
            clone: {
                "caption": f"{clone}: {plan.clones[clone].recipe}, {plan.clones[clone].generator}",
                "classes": [
                    {"index": i, "wnid": e.wnid, "chunk": first_chunk(plan, clone, e)}
                    for i, e in sheet_classes(plan, settings, clone)
                ],
            }
            for clone in clones
        },
    }


# ---- pages ---------------------------------------------------------------------------------------------
def shown(source: str, quality_clones: list[str], is_produced: Callable[[str], bool]) -> bool:
    """Whether the report shows a registered table or figure: a rule of the workflow writes its source
    (`is_produced`: a registered table whose rule is absent is left out) and this config asks for it (the
    quality tables only when a CLIP is set)."""
    if source in paths.QUALITY_TABLES.values() and not quality_clones:
        return False
    return is_produced(source)


def report_outputs(
    config: dict, plan: Plan, quality_clones: list[str], is_produced: Callable[[str], bool]
) -> list[str]:
    """Every page of the report this config makes: registered tables and figures whose source some rule
    of this config produces, and per clone, run and comparable class set its sheets, statistics and curves."""
    pages = [
        f"results/report/{kind}/{name}.{ext}"
        for kind, ext, entries in (("tables", "html", TABLES), ("figures", "png", FIGURES))
        for name, e in entries.items()
        if shown(e.source, quality_clones, is_produced)
    ]
    for clone in generated_clones(plan):
        pages += [f"results/report/clones/{clone}/contact_sheet.jpg", f"results/report/clones/{clone}/generation.html"]
    pages += [f"results/report/compare/{class_set}.jpg" for class_set in comparison_groups(config, plan)]
    pages += [f"results/report/runs/{run}/curves.png" for run in config["runs"]]
    keys = [AP.adaptation_key(plan, name) for name in config.get("adaptations", {})]
    pages += [f"results/report/adaptations/{key}/losses.png" for key in keys]
    return pages
