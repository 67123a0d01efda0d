# The only Python among the rules: config validation and the input functions. Logic lives in imagenet_sd.plan.
import os
import sys

sys.path.insert(0, workflow.basedir)

from snakemake.logging import logger
from snakemake.utils import validate

from imagenet_sd.plan import ConfigError, build_plan, hub_folder, hub_model_id, recipe_dependencies
from imagenet_sd.runtime import export_pythonpath, schema_defaults
from imagenet_sd.prompts import scene_files

BUILT_DATASETS = {"resources/datasets/sklearn-digits"}  # real image sets a local rule writes (no download)

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

for _name, _clone in PLAN.clones.items():
    if _clone.real and not os.path.isdir(_clone.source["path"]) and _clone.source["path"] not in BUILT_DATASETS:
        logger.warning(f"clones.{_name}.path: folder {_clone.source['path']} does not exist yet; its pack job will "
                       "fail until it holds the images (ImageFolder layout, one sub-folder per wnid)")

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
    attack=r"[A-Za-z0-9][A-Za-z0-9_.+-]*",
    eps=r"\d+(\.\d+)?",


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
    inputs = {
        "train": PLAN.clone_chunks(wildcards.clone, "train"),
        "heldout": PLAN.clone_chunks(wildcards.clone, "heldout"),
    }
    source = PLAN.clones[wildcards.clone].source
    if source and os.path.normpath(source["path"]) in BUILT_DATASETS:
        inputs["folder"] = source["path"]  # a real set this workflow writes; real ImageNet is external
    return inputs


def clone_source(wildcards):
    """A real clone's ImageFolder settings (None for a synthetic clone)."""
    return PLAN.clones[wildcards.clone].source


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


# ---- models: every run is a model of the same name -------------------------------------------------


def model_checkpoint(wildcards):
    return f"results/runs/{wildcards.model}/checkpoint.pt"


def model_evalsets():
    """Evaluation sets of every model."""
    return {run: r.get("evaluate", []) for run, r in config["runs"].items()}


def model_data_kinds():
    """Per model, whether it was trained on real or synthetic images (for the tables)."""
    return {run: "real" if PLAN.clones[r["clone"]].real else "synthetic" for run, r in config["runs"].items()}


def model_eval_resolution(wildcards):
    training = config["trainings"][config["runs"][wildcards.model]["training"]]
    return training.get("eval_resolution", schema_defaults("trainings")["eval_resolution"])


def evalset_spec(wildcards):
    return config["evalsets"][wildcards.evalset]


def evalset_folder(wildcards):
    return evalset_images(wildcards.evalset)


# ---- robustness and representation -----------------------------------------------------------------


def eps_label(eps):
    """An epsilon (in 1/255) as it appears in a path: 1 -> '1', 0.5 -> '0.5'."""
    return f"{eps:g}"


def attack_outputs():
    """One file per (model, attacked set, attack, epsilon): adding an attack or an epsilon adds only its own."""
    spec = config["robustness"]
    return [f"results/models/{model}/attack/{ev}/{attack}/eps{eps_label(eps)}.json"
            for model, sets in model_evalsets().items() for ev in sets if ev in spec["evalsets"]
            for attack in spec["attacks"] for eps in spec["epsilons"]]


def attack_settings(wildcards):
    """The attack's settings, schema defaults filled in (a changed setting reruns only that attack's jobs)."""
    return {**schema_defaults("robustness", "attacks"), **config["robustness"]["attacks"][wildcards.attack]}


def attack_epsilon(wildcards):
    return float(wildcards.eps)


def representation_outputs():
    spec = config["representation"]
    return [f"results/models/{model}/representation/{ev}.json"
            for model, sets in model_evalsets().items() for ev in sets if ev in spec["evalsets"]]


def representation_features(wildcards):
    """Test-split features of the model on the set (features_file comes with the feature-extraction rule)."""
    return features_file(wildcards.model, wildcards.evalset, "test")


def representation_table_outputs():
    """The representation table, when the config asks for statistics (they need the features rule)."""
    return ["results/tables/representation.csv"] if config["representation"]["evalsets"] else []


def real_clones():
    return sorted(name for name, clone in PLAN.clones.items() if clone.real)
