"""The files and groups a config asks for beyond the generated chunks: per-model results (attacks,
representation statistics), what the tables read and print, the quality step's and the dataset cards'
outputs; and what the prompts and pack jobs read (a recipe with the recipes it mixes, chunks, embeddings, a
real folder), with the warnings about user folders not there yet. Snakemake-free, like every planner:
rules/common.smk calls in with the config, the plan and the models (imagenet_sd.planning.models.build_models),
and the unit tests call the same functions.

A per-model output exists once per entry that asks for it (a model's `evaluate` set listed in a section's
`evalsets`, an attack, an epsilon), so adding an entry plans only its own files.
"""

from __future__ import annotations

import os

from imagenet_sd import paths
from imagenet_sd.planning import adaptation as AP
from imagenet_sd.planning import quality as QP
from imagenet_sd.planning.clones import Clone, Plan, recipe_dependencies
from imagenet_sd.planning.models import Model


# ---- per model ------------------------------------------------------------------------------------
def eps_label(eps: float) -> str:
    """An epsilon (in 1/255) as it appears in a path: 1 -> '1', 0.5 -> '0.5'."""
    return f"{eps:g}"


def model_evalsets(models: dict[str, Model]) -> dict[str, list[str]]:
    """Evaluation sets of every model (runs and external models)."""
    return {name: list(m.evaluate) for name, m in models.items()}


def model_data_kinds(models: dict[str, Model]) -> dict[str, str]:
    """Per model evaluated on some set, whether it was trained on real or synthetic images (for the robustness
    and representation tables; a model that is only probed changes neither)."""
    return {name: "synthetic" if m.synthetic else "real" for name, m in models.items() if m.evaluate}


def model_table_info(config: dict, models: dict[str, Model], section: str) -> dict[str, dict]:
    """Per model with `evaluate` (or `transfer`) entries, what its table prints beside its numbers. Only those:
    adding a model to the config then reruns no table it does not appear in."""
    return {
        name: {
            "clone": config["runs"].get(name, {}).get("clone", ""),
            "training": config["runs"].get(name, {}).get("training", ""),
            "synthetic": m.synthetic,
            "source": m.source,
        }
        for name, m in models.items()
        if getattr(m, section)
    }


def attack_outputs(config: dict, models: dict[str, Model]) -> list[str]:
    """One file per (model, attacked set, attack, epsilon): adding an attack or an epsilon adds only its own."""
    spec = config["robustness"]
    return [
        paths.ATTACK.format(model=model, evalset=ev, attack=attack, eps=eps_label(eps))
        for model, sets in model_evalsets(models).items()
        for ev in sets
        if ev in spec["evalsets"]
        for attack in spec["attacks"]
        for eps in spec["epsilons"]
    ]


def representation_outputs(config: dict, models: dict[str, Model]) -> list[str]:
    """One statistics file per (model, evaluated set listed in `representation.evalsets`)."""
    spec = config["representation"]
    return [
        paths.REPRESENTATION.format(model=model, evalset=ev)
        for model, sets in model_evalsets(models).items()
        for ev in sets
        if ev in spec["evalsets"]
    ]


def representation_table_outputs(config: dict) -> list[str]:
    """The representation table, when the config asks for statistics (they need the features rule)."""
    return ["results/tables/representation.csv"] if config["representation"]["evalsets"] else []


def transfer_table_datasets(config: dict) -> dict[str, dict]:
    """Per transfer set, what the transfer table prints of it (its group, summary flag and description)."""
    return {
        name: {"group": s.get("group", ""), "summary": s.get("summary", True), "description": s.get("description", "")}
        for name, s in config["transfer_sets"].items()
    }


# ---- clones ---------------------------------------------------------------------------------------
def real_clones(plan: Plan) -> list[str]:
    return sorted(name for name, clone in plan.clones.items() if clone.real)


def generated_clones(plan: Plan) -> dict[str, Clone]:
    """Clones made by a generator (a real clone has no chunks to draw a contact sheet from)."""
    return {name: c for name, c in plan.clones.items() if not c.real}


def prompt_table_clones(plan: Plan) -> dict[str, dict]:
    """Per generated clone, its prompt files in class order and its images per class (the prompt table)."""
    return {
        name: {"prompts": plan.clone_prompts(name), "images_per_class": c.images_per_class}
        for name, c in plan.clones.items()
    }


def all_prompt_files(plan: Plan) -> list[str]:
    return sorted({p for clone in plan.clones for p in plan.clone_prompts(clone)})


def recipe_params(config: dict, plan: Plan, recipe_key: str) -> dict:
    """Everything the prompts job needs to know about its recipe, mixed-in recipes resolved."""
    name = plan.by_recipe_key(recipe_key)
    recipes = config["recipes"]
    members = {name: recipes[name]}
    for dep in recipe_dependencies(config, name):
        members[dep] = recipes[dep]
    return {"name": name, "recipes": members}


BUILT_DATASETS = {paths.SKLEARN_DIGITS}  # real image sets a local rule writes (real ImageNet is external)


def built_here(path: str) -> bool:
    """Whether a rule of this workflow writes the image folder `path` (then it is a DAG input of its readers)."""
    return os.path.normpath(path) in BUILT_DATASETS


def missing_folders(config: dict, plan: Plan) -> list[str]:
    """Warnings naming the user's folders that do not exist yet (of evaluation sets and real clones): not an
    error, since a config may be planned before its images are copied."""
    warnings = [
        f"evalsets.{name}.path: folder {spec['path']} does not exist yet; its evaluate jobs "
        "will fail until it holds the images (ImageFolder layout, one sub-folder per wnid)"
        for name, spec in config["evalsets"].items()
        if "path" in spec and not os.path.isdir(spec["path"])
    ]
    return warnings + [
        f"clones.{name}.path: folder {c.source['path']} does not exist yet; its pack job will "
        "fail until it holds the images (ImageFolder layout, one sub-folder per wnid)"
        for name, c in plan.clones.items()
        if c.real and not os.path.isdir(c.source["path"]) and not built_here(c.source["path"])
    ]


def pack_inputs(config: dict, plan: Plan, clone: str) -> dict[str, list[str] | str]:
    """The chunks a pack job reads (train, held-out), a curated clone's CLIP embeddings, and a real clone's
    folder when a rule of this workflow writes it (BUILT_DATASETS; real ImageNet is external)."""
    c = plan.clones[clone]
    inputs = {"train": plan.clone_chunks(clone, "train"), "heldout": plan.clone_chunks(clone, "heldout")}
    if c.curation:
        inputs["embeddings"] = list(QP.curation_embeddings(config, plan, clone).values())
    if c.source and built_here(c.source["path"]):
        inputs["folder"] = c.source["path"]
    return inputs


def pack_source(config: dict, plan: Plan, clone: str) -> dict | None:
    """A real clone's ImageFolder settings; a curated clone's curation and CLIP embedding files; else None.
    (One param for both: a new param would change the recorded params of every pack job, and rerun packing
    and training of clones that did not change.)"""
    c = plan.clones[clone]
    if c.curation:
        return {"curation": c.curation, "embeddings": QP.curation_embeddings(config, plan, clone)}
    return c.source


def quality_outputs(quality_clones: list[str]) -> list[str]:
    """The quality tables and each measured clone's sheet of its worst classes; nothing without a CLIP."""
    sheets = [f"results/report/clones/{clone}/quality_worst.jpg" for clone in quality_clones]
    return list(paths.QUALITY_TABLES.values()) + sheets if quality_clones else []


# ---- dataset cards --------------------------------------------------------------------------------
def card_outputs(plan: Plan) -> list[str]:
    return [path.format(clone=clone) for clone in plan.clones for path in (paths.CARD_JSON, paths.CARD_MARKDOWN)]


def clone_stats(plan: Plan, clone: str) -> list[str]:
    """The stats records of every chunk of a clone, train then held-out (a real clone has none)."""
    return plan.clone_chunks(clone, "train", stats=True) + plan.clone_chunks(clone, "heldout", stats=True)


def card_inputs(plan: Plan, quality_clones: list[str], clone: str) -> dict:
    """The pack's index, the chunks' stats (re-draws) and, when the clone was measured, the quality table."""
    inputs = {"index": paths.SHARD_INDEX.format(clone=clone), "stats": clone_stats(plan, clone)}
    if clone in quality_clones:
        inputs["quality"] = paths.QUALITY_TABLES["clones"]
    return inputs


def card_made_of(config: dict, plan: Plan, clone: str) -> dict:
    """The config entries that made the clone, as the card records them (a real clone: the clone and its sheet)."""
    c, spec = plan.clones[clone], config["clones"][clone]
    made_of = {"seed": config["seed"], "clone": spec, "class_set": config["class_sets"][spec["class_set"]]}
    if c.real:
        return made_of
    recipes = [c.recipe, *recipe_dependencies(config, c.recipe)]
    generator, built = config["generators"][c.generator], plan.built_pipeline(c.generator)
    adaptation = AP.card_entry(plan, generator["adaptation"]) if generator.get("adaptation") else None
    if adaptation:  # the card names the base model (its licence) and the adaptation that trained it
        generator = {**generator, "model": adaptation["entry"]["model"], "revision": adaptation["entry"]["revision"]}
        built = AP.built_pipeline_of(config, adaptation["entry"]["model"])
    return made_of | {
        "recipe_name": c.recipe,
        "recipes": {name: config["recipes"][name] for name in recipes},
        "recipe_key": c.recipe_key,
        "generator_name": c.generator,
        "generator": generator,
        "generator_key": c.generator_key,
        "pipeline": config["pipelines"][built] if built else None,
        **({"adaptation": adaptation} if adaptation else {}),
    }
