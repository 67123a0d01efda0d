# The only Python among the rules: config validation and the input functions. Logic lives in imagenet_sd.plan.
import os
import sys

sys.path.insert(0, workflow.basedir)

from snakemake.logging import logger
from snakemake.utils import validate

from imagenet_sd.plan import ConfigError, build_plan, hub_folder, hub_model_id, recipe_dependencies
from imagenet_sd.runtime import export_pythonpath
from imagenet_sd.prompts import scene_files

export_pythonpath(workflow.basedir)  # scripts run in child processes, locally and inside SLURM jobs
validate(config, os.path.join(workflow.basedir, "schemas/config.schema.yaml"))
try:
    PLAN = build_plan(config)
except ConfigError as error:
    raise WorkflowError(f"invalid config: {error}") from None

for _name, _spec in config["evalsets"].items():
    if "path" in _spec and not os.path.isdir(_spec["path"]):
        logger.warning(f"evalsets.{_name}.path: folder {_spec['path']} does not exist yet; its evaluate jobs "
                       "will fail until it holds the images (ImageFolder layout, one sub-folder per wnid)")

WORDNET = "resources/nltk_data/corpora/wordnet/lexnames"
TOKENIZER = "resources/clip-tokenizer/vocab.json"


wildcard_constraints:
    recipe_key=r"[A-Za-z0-9][A-Za-z0-9_.+-]*-[0-9a-f]{8}",
    generator_key=r"[A-Za-z0-9][A-Za-z0-9_.+-]*-[0-9a-f]{8}",
    ckey=r"n\d{8}(-[0-9a-f]{8})?",
    split="train|heldout",
    start=r"\d{6}",
    stop=r"\d{6}",
    pipeline=r"[A-Za-z0-9][A-Za-z0-9_.+-]*",
    clone=r"[A-Za-z0-9][A-Za-z0-9_.+-]*",
    run=r"[A-Za-z0-9][A-Za-z0-9_.+-]*",
    evalset=r"[A-Za-z0-9][A-Za-z0-9_.+-]*",
    hub_model=r"[A-Za-z0-9][A-Za-z0-9_.-]*(--[A-Za-z0-9][A-Za-z0-9_.-]*)?",
    revision=r"[A-Za-z0-9][A-Za-z0-9_.-]*",
    class_set=r"[A-Za-z0-9][A-Za-z0-9_.+-]*",
    table=r"[A-Za-z0-9][A-Za-z0-9_.+-]*",
    figure=r"[A-Za-z0-9][A-Za-z0-9_.+-]*",


def recipe_params(wildcards):
    """Everything the prompts job needs to know about its recipe, mixed-in recipes resolved."""
    name = PLAN.by_recipe_key(wildcards.recipe_key)
    recipes = config["recipes"]
    members = {name: recipes[name]}
    for dep in recipe_dependencies(config, name):
        members[dep] = recipes[dep]
    return {"name": name, "recipes": members}



def model_folder(generator):
    """The local folder a generator's pipeline loads from: built here, the user's own, or prefetched from the hub."""
    spec = config["generators"][generator]
    built = PLAN.built_pipeline(generator)
    if built:
        return f"resources/pipelines/{built}"
    if os.path.isdir(spec["model"]):
        return spec["model"]
    return hub_folder(spec["model"], spec["revision"])


def generator_pipeline(wildcards):
    """model_index.json of the pipeline folder. Ancient: rebuilding or re-downloading it changes no image
    (the model id, revision and tiny-pipeline settings are part of the generator key)."""
    return ancient(f"{model_folder(PLAN.by_generator_key(wildcards.generator_key))}/model_index.json")


def clone_inputs(wildcards):
    return {
        "train": PLAN.clone_chunks(wildcards.clone, "train"),
        "heldout": PLAN.clone_chunks(wildcards.clone, "heldout"),
    }


def run_clone(wildcards):
    return config["runs"][wildcards.run]["clone"]


def evalset_images(evalset):
    """Folder of an evaluation set: a clone's held-out split (built here) or the user's real images."""
    spec = config["evalsets"][evalset]
    return f"results/clones/{spec['clone']}/heldout" if "clone" in spec else spec["path"]


def evalset_input(wildcards):
    """Only held-out splits are DAG inputs; real datasets are external and are checked by the job itself."""
    spec = config["evalsets"][wildcards.evalset]
    return evalset_images(wildcards.evalset) if "clone" in spec else []


def evaluation_outputs():
    return [f"results/runs/{run}/eval/{ev}.json" for run, r in config["runs"].items() for ev in r["evaluate"]]


def all_prompt_files():
    return sorted({p for clone in PLAN.clones for p in PLAN.clone_prompts(clone)})


# ---- report -----------------------------------------------------------------------------------------------
from imagenet_sd.contact_sheets import sample_indices
from imagenet_sd.report import FIGURES, TABLES, caption_text, report_settings

REPORT = report_settings(config)


def sheet_classes(clone):
    """The fixed sample of classes a contact sheet shows: evenly spaced over the clone's class sheet."""
    classes = PLAN.clones[clone].classes
    return [(i, classes[i]) for i in sample_indices(len(classes), REPORT["sheet_classes"])]


def first_chunk(clone, entry):
    c = PLAN.clones[clone]
    start, stop = c.chunks("train")[0]
    return PLAN.chunk_path(c.generator_key, c.recipe_key, "train", entry.key, start, stop)


def sheet_inputs(wildcards):
    """Only the first train chunk of each sampled class (and its prompt file), never the whole clone."""
    sample = sheet_classes(wildcards.clone)
    c = PLAN.clones[wildcards.clone]
    return {"chunks": [first_chunk(wildcards.clone, e) for _, e in sample],
            "prompts": [PLAN.prompt_path(c.recipe_key, e.key) for _, e in sample]}


def sheet_params(wildcards):
    c = PLAN.clones[wildcards.clone]
    return {"title": f"clone {c.name}: recipe {c.recipe}, generator {c.generator}",
            "classes": [{"index": i, "wnid": e.wnid, "chunk": first_chunk(c.name, e),
                         "prompts": PLAN.prompt_path(c.recipe_key, e.key)} for i, e in sheet_classes(c.name)]}


def comparison_groups():
    """Class sets drawn by two or more clones that differ in recipe or generator -> those clones."""
    groups = {}
    for name, c in PLAN.clones.items():
        groups.setdefault(config["clones"][name]["class_set"], {}).setdefault((c.recipe_key, c.generator_key), name)
    return {cs: sorted(by_key.values()) for cs, by_key in groups.items() if len(by_key) > 1}


def comparison_inputs(wildcards):
    clones = comparison_groups()[wildcards.class_set]
    return [first_chunk(clone, e) for clone in clones for _, e in sheet_classes(clone)]


def comparison_params(wildcards):
    clones = comparison_groups()[wildcards.class_set]
    return {"title": f"class set {wildcards.class_set}: " + " vs ".join(clones),
            "clones": {clone: {"caption": f"{clone}: {PLAN.clones[clone].recipe}, {PLAN.clones[clone].generator}",
                               "classes": [{"index": i, "wnid": e.wnid, "chunk": first_chunk(clone, e)}
                                           for i, e in sheet_classes(clone)]} for clone in clones}}


def clone_stats(wildcards):
    return PLAN.clone_chunks(wildcards.clone, "train", "json") + PLAN.clone_chunks(wildcards.clone, "heldout", "json")


def table_source(wildcards):
    return TABLES[wildcards.table].source


def table_category(wildcards):
    return TABLES[wildcards.table].category


def table_caption(wildcards):
    return caption_text(workflow.basedir, TABLES[wildcards.table], config)


def figure_source(wildcards):
    return FIGURES[wildcards.figure].source


def figure_category(wildcards):
    return FIGURES[wildcards.figure].category


def figure_caption(wildcards):
    return caption_text(workflow.basedir, FIGURES[wildcards.figure], config)


def report_outputs():
    """Every page of the report this config makes: registered tables and figures whose source some rule
    of this config produces, and per clone, run and comparable class set its sheets, statistics and curves."""
    pages = [f"results/report/tables/{name}.html" for name, e in TABLES.items() if produced(e.source)]
    pages += [f"results/report/figures/{name}.png" for name, e in FIGURES.items() if produced(e.source)]
    for clone in PLAN.clones:
        pages += [f"results/report/clones/{clone}/contact_sheet.jpg", f"results/report/clones/{clone}/generation.html"]
    pages += [f"results/report/compare/{class_set}.jpg" for class_set in comparison_groups()]
    pages += [f"results/report/runs/{run}/curves.png" for run in config["runs"]]
    return pages


def produced(path):
    """Whether a rule of this workflow writes `path` (a registered table whose rule is absent is left out)."""
    return any(rule.is_producer(path) for rule in workflow.rules)
