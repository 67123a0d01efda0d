# The only Python among the rules: config validation and the input functions. Logic lives in imagenet_sd.plan.
import os
import sys

sys.path.insert(0, workflow.basedir)

from snakemake.exceptions import WorkflowError
from snakemake.logging import logger
from snakemake.utils import validate

from imagenet_sd import paths
from imagenet_sd.config import ConfigError
from imagenet_sd.paths import hub_folder, hub_model_id
from imagenet_sd.plan import build_plan, recipe_dependencies
from imagenet_sd.runtime import export_cache_dirs, export_pythonpath
from imagenet_sd.prompts import scene_files

export_pythonpath(workflow.basedir)  # scripts run in child processes, locally and inside SLURM jobs
export_cache_dirs()  # no library cache in /tmp
validate(config, os.path.join(workflow.basedir, "schemas/config.schema.yaml"))
try:
    PLAN = build_plan(config)
except ConfigError as error:
    raise WorkflowError(f"invalid config: {error}") from None

for _name, _spec in config["evalsets"].items():
    if "path" in _spec and not os.path.isdir(_spec["path"]):
        logger.warning(f"evalsets.{_name}.path: folder {_spec['path']} does not exist yet; its evaluate jobs "
                       "will fail until it holds the images (ImageFolder layout, one sub-folder per wnid)")

WORDNET = paths.WORDNET
TOKENIZER = paths.TOKENIZER


wildcard_constraints:
    **paths.WILDCARDS,


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
