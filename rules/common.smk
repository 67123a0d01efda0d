# The only Python among the rules: config validation and the input functions. Logic lives in imagenet_sd.plan.
import os
import sys

sys.path.insert(0, workflow.basedir)

from snakemake.logging import logger
from snakemake.utils import validate

from imagenet_sd.plan import ConfigError, build_plan, hub_folder, hub_model_id, recipe_dependencies
from imagenet_sd.runtime import export_pythonpath
from imagenet_sd.prompts import scene_files
from imagenet_sd import transfer_plan as TP

export_pythonpath(workflow.basedir)  # scripts run in child processes, locally and inside SLURM jobs
validate(config, os.path.join(workflow.basedir, "schemas/config.schema.yaml"))
try:
    PLAN = build_plan(config)
    MODELS = TP.build_models(config, PLAN)
    for _warning in TP.check_datasets(config):
        logger.warning(_warning)
except ConfigError as error:
    raise WorkflowError(f"invalid config: {error}") from None

for _name, _spec in config["evalsets"].items():
    if "path" in _spec and not os.path.isdir(_spec["path"]):
        logger.warning(f"evalsets.{_name}.path: folder {_spec['path']} does not exist yet; its evaluate jobs "
                       "will fail until it holds the images (ImageFolder layout, one sub-folder per wnid)")

FETCHED = {m.checkpoint: m.fetch for m in MODELS.values() if m.fetch}  # local file -> URL / weights name
PREP_KEY = TP.preprocessing_key(config)
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
    model=r"[A-Za-z0-9][A-Za-z0-9_.+-]*",
    dataset=r"[A-Za-z0-9][A-Za-z0-9_.+-]*",
    part="train|test",
    probe_hash=r"[0-9a-f]{8}",
    seed=r"\d+",
    fetched=r"(torchvision/[A-Za-z0-9_.]+\.pth|url/[0-9a-f]{8}/[^/]+)",


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
    return TP.evaluation_outputs(MODELS)


# ---- models: runs of this config and external checkpoints ------------------------------------------------
def model_checkpoint(wildcards):
    """Path of the checkpoint file of wildcards.model (a run's, a local file, or fetched under resources/models)."""
    return MODELS[wildcards.model].checkpoint


def model_verified(wildcards):
    """External checkpoints are checked (keys, shapes, class count) by a local job before any GPU job reads them."""
    return [] if MODELS[wildcards.model].source == "run" else f"results/models/{wildcards.model}/model.json"


def model_params(wildcards):
    m = MODELS[wildcards.model]
    return {"source": m.source, "classes": list(m.classes), "arch": m.arch}


def fetch_source(wildcards):
    return FETCHED[f"resources/models/{wildcards.fetched}"]


def model_eval_training(wildcards):
    """Evaluation settings: a run's training recipe; for an external model, its arch and eval resolution."""
    m = MODELS[wildcards.model]
    if m.source == "run":
        return config["trainings"][config["runs"][m.name]["training"]]
    return {"arch": m.arch, "eval_resolution": m.eval_resolution}


def model_table_info(section):
    """Per model with `evaluate` (or `transfer`) entries, what its table prints beside its numbers. Only those:
    adding a model to the config then reruns no table it does not appear in."""
    return {name: {"clone": config["runs"].get(name, {}).get("clone", ""),
                   "training": config["runs"].get(name, {}).get("training", ""),
                   "synthetic": m.synthetic, "source": m.source}
            for name, m in MODELS.items() if getattr(m, section)}


# ---- datasets (transfer sets and evaluation sets), features and probes -----------------------------------
def dataset_index_input(wildcards):
    """Prepared lists and clone held-out splits are DAG inputs; user folders are read (and checked) by the job."""
    if wildcards.dataset in config["transfer_sets"]:
        root = TP.dataset_root(config, wildcards.dataset)
        return [f"{root}/{wildcards.part}.tsv"] if root.startswith("resources/transfer/") else []
    return evalset_images(wildcards.dataset) if "clone" in config["evalsets"][wildcards.dataset] else []


def dataset_params(wildcards):
    return {"root": TP.dataset_root(config, wildcards.dataset), **TP.index_settings(config, wildcards.dataset)}


def features_file(model, dataset, split):
    """Path string of the features of `model` on one split of `dataset` (train/test; evaluation sets: test)."""
    return TP.features_path(config, model, dataset, split)


def probe_features(wildcards):
    return {part: features_file(wildcards.model, wildcards.dataset, part) for part in ("train", "test")}


def probe_outputs():
    return TP.probe_outputs(config, MODELS)


def transfer_table_datasets():
    return {name: {"group": s.get("group", ""), "summary": s.get("summary", True),
                   "description": s.get("description", "")} for name, s in config["transfer_sets"].items()}


def all_prompt_files():
    return sorted({p for clone in PLAN.clones for p in PLAN.clone_prompts(clone)})


def transfer_set_spec(wildcards):
    """The settings that determine a prepared set's files (not its table group, description or probe)."""
    spec = config["transfer_sets"][wildcards.dataset]
    return {k: spec.get(k) for k in ("source", "dataset", "image_size", "test_fraction") if k in spec}
