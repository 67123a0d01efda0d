# The only Python among the rules: config validation and the input functions, each a thin adapter that passes
# `config` and the job's wildcards to a planner of imagenet_sd.planning (clones, models, transfer, outputs,
# report, quality, adaptation), where the planning lives and unit tests reach it.
import os
import sys

sys.path.insert(0, workflow.basedir)

from snakemake.exceptions import WorkflowError
from snakemake.logging import logger
from snakemake.utils import validate

from imagenet_sd import paths
from imagenet_sd.config import ConfigError, job_params
from imagenet_sd.evaluate import protocols
from imagenet_sd.generate.chunk_check import CONFIGFILES_ENV, DamagedChunk, size_problem
from imagenet_sd.paths import hub_model_id
from imagenet_sd.planning import adaptation as AP
from imagenet_sd.planning import models as MP
from imagenet_sd.planning import outputs as OP
from imagenet_sd.planning import quality as QP
from imagenet_sd.planning import report as RP
from imagenet_sd.planning import transfer as TP
from imagenet_sd.planning.clones import build_plan
from imagenet_sd.prompts.prompts import scene_files
from imagenet_sd.quality.cards import licence as card_licence
from imagenet_sd.report.references import reference_facts
from imagenet_sd.report.report import FIGURES, TABLES, caption_text, report_settings
from imagenet_sd.report.evaluation_tables import run_budgets, training_budget
from imagenet_sd.runtime import export_cache_dirs, export_pythonpath

export_pythonpath(workflow.basedir)  # scripts run in child processes, locally and inside SLURM jobs
# The configs of this run, for the command a job prints to regenerate a damaged chunk (imagenet_sd.generate.chunk_check).
os.environ[CONFIGFILES_ENV] = os.pathsep.join(map(str, workflow.overwrite_configfiles))
export_cache_dirs()  # no library cache in /tmp
validate(config, os.path.join(workflow.basedir, "schemas/config.schema.yaml"))
try:
    PLAN = build_plan(config)
    MODELS = MP.build_models(config, PLAN)
    for _warning in TP.check_datasets(config):
        logger.warning(_warning)
except ConfigError as error:
    raise WorkflowError(f"invalid config: {error}") from None

for _warning in OP.missing_folders(config, PLAN):
    logger.warning(_warning)

FETCHED = {m.checkpoint: m.fetch for m in MODELS.values() if m.fetch}  # local file -> URL / weights name
PREP_KEY = TP.preprocessing_key(config)
WORDNET = paths.WORDNET
TOKENIZER = paths.TOKENIZER


wildcard_constraints:
    **paths.WILDCARDS,


def recipe_params(wildcards):
    return OP.recipe_params(config, PLAN, wildcards.recipe_key)


# ---- adaptation of a pipeline on a real clone (imagenet_sd.planning.adaptation) --------------------------
def adaptation_inputs(wildcards):
    """The base pipeline (ancient, as a generator's), the real clone's train shards and the prompt files."""
    inputs = AP.adaptation_inputs(PLAN, wildcards.adaptation_key)
    return {**inputs, "base": ancient(inputs["base"])}


def adaptation_params(wildcards):
    return AP.adaptation_params(PLAN, wildcards.adaptation_key)


def generator_pipeline(wildcards):
    """model_index.json of the pipeline folder. Ancient: rebuilding or re-downloading it changes no image
    (the model id, revision and tiny-pipeline settings are part of the generator key)."""
    return ancient(paths.model_index(AP.model_folder(PLAN, generator_name(wildcards))))


# ---- prompts, generation -------------------------------------------------------------------------
def recipe_scene_files(wildcards):
    """Scene lists the recipe (and the recipes it mixes) read. Ancient: a touched list regenerates nothing."""
    return [ancient(f) for f in scene_files(recipe_params(wildcards)["recipes"])]


def class_wnid(wildcards):
    return PLAN.class_entry(wildcards.ckey).wnid


def class_name_override(wildcards):
    return PLAN.class_entry(wildcards.ckey).name


def prompt_table_clones():
    return OP.prompt_table_clones(PLAN)


def generator_name(wildcards):
    return PLAN.by_generator_key(wildcards.generator_key)


def generator_model_dir(wildcards):
    return AP.model_folder(PLAN, generator_name(wildcards))


def generator_settings(wildcards):
    return PLAN.pixel_settings(generator_name(wildcards))


def tiny_pipeline_settings(wildcards):
    return config["pipelines"][wildcards.pipeline]


def tiny_pipeline_folder(wildcards):
    return paths.PIPELINE_FOLDER.format(pipeline=wildcards.pipeline)


def hub_model(wildcards):
    return hub_model_id(wildcards.hub_model)


def hub_revision(wildcards):
    return wildcards.revision


def hub_download_folder(wildcards):
    return paths.HUB_FOLDER.format(hub_model=wildcards.hub_model, revision=wildcards.revision)


# ---- pack, train ------------------------------------------------------------------------------------
def clone_classes(wildcards):
    return [e.wnid for e in PLAN.clones[wildcards.clone].classes]


def clone_setting(name):
    """An input function giving one setting of the clone of the job (images_per_class, shard_size, ...)."""

    def clone_setting_of(wildcards):
        return getattr(PLAN.clones[wildcards.clone], name)

    clone_setting_of.__name__ = f"clone_{name}"
    return clone_setting_of


def run_shard_index(wildcards):
    return paths.SHARD_INDEX.format(clone=run_clone(wildcards))


def run_shards(wildcards):
    return paths.SHARDS.format(clone=run_clone(wildcards))


def run_training(wildcards):
    return job_params("trainings", config["trainings"][config["runs"][wildcards.run]["training"]])


def run_classes(wildcards):
    return [e.wnid for e in PLAN.clones[run_clone(wildcards)].classes]


def checked_chunks(chunks):
    """Chunk tars a job reads, each compared with its stats record now, while Snakemake plans: a truncated or
    overwritten chunk stops the run here, naming it and the command that regenerates it, before Snakemake
    removes the outputs of the job that would read it (it removes them before starting a job). A stat and a
    small JSON per chunk; the job itself checks each chunk's sha256 as it reads it
    (imagenet_sd.generate.chunk_check)."""
    for tar in chunks:
        problem = size_problem(tar)
        if problem:
            raise WorkflowError(str(DamagedChunk(tar, problem)))
    return chunks


def clone_inputs(wildcards):
    inputs = OP.pack_inputs(config, PLAN, wildcards.clone)
    return {**inputs, "train": checked_chunks(inputs["train"]), "heldout": checked_chunks(inputs["heldout"])}


def clone_source(wildcards):
    return OP.pack_source(config, PLAN, wildcards.clone)


def run_clone(wildcards):
    return config["runs"][wildcards.run]["clone"]


def evalset_input(wildcards):
    return MP.evalset_input(config, wildcards.evalset)


def evaluation_outputs():
    return MP.evaluation_outputs(MODELS)


# ---- models: runs of this config and external checkpoints ------------------------------------------------
def model_checkpoint(wildcards):
    """Path of the checkpoint file of wildcards.model (a run's, a local file, or fetched under resources/models)."""
    return MODELS[wildcards.model].checkpoint


def model_verified(wildcards):
    """External checkpoints are checked (keys, shapes, class count) by a local job before any GPU job reads them."""
    return [] if MODELS[wildcards.model].source == "run" else paths.MODEL_CHECK.format(model=wildcards.model)


def model_classes(wildcards):
    """The model's classes (wnids, output order): what representation statistics of it are restricted to."""
    return list(MODELS[wildcards.model].classes)


def model_params(wildcards):
    m = MODELS[wildcards.model]
    return {"source": m.source, "classes": list(m.classes), "arch": m.arch}


def fetch_source(wildcards):
    return FETCHED[paths.FETCHED_MODEL.format(fetched=wildcards.fetched)]


def model_eval_training(wildcards):
    return MP.model_eval_training(config, MODELS[wildcards.model])


def model_table_info(section):
    return OP.model_table_info(config, MODELS, section)


# ---- datasets (transfer sets and evaluation sets), features and probes -----------------------------------
def dataset_index_input(wildcards):
    return TP.dataset_index_inputs(config, wildcards.dataset, wildcards.part)


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
    return OP.transfer_table_datasets(config)


def all_prompt_files():
    return OP.all_prompt_files(PLAN)


def transfer_set_spec(wildcards):
    return TP.transfer_set_spec(config, wildcards.dataset)


# ---- models: every run is a model of the same name -------------------------------------------------


def model_data_kinds():
    return OP.model_data_kinds(MODELS)


def model_eval_resolution(wildcards):
    return MP.model_eval_resolution(config, MODELS[wildcards.model])


def evalset_spec(wildcards):
    """What scoring reads of an evaluation set: not its labels, whose edits rerun nothing; `resize` resolved."""
    return MP.scoring_spec(config["evalsets"][wildcards.evalset])


def evalset_folder(wildcards):
    return MP.evalset_folder(config, wildcards.evalset)


# ---- robustness and representation -----------------------------------------------------------------


def attack_outputs():
    return OP.attack_outputs(config, MODELS)


def attack_settings(wildcards):
    """The attack's settings, defaults filled in (a changed setting reruns only that attack's jobs)."""
    return protocols.attack_settings(config, wildcards.attack)


def attack_epsilon(wildcards):
    return float(wildcards.eps)


def representation_outputs():
    return OP.representation_outputs(config, MODELS)


def representation_features(wildcards):
    """Test-split features of the model on the set (features_file comes with the feature-extraction rule)."""
    return features_file(wildcards.model, wildcards.evalset, "test")


def representation_table_outputs():
    return OP.representation_table_outputs(config)


def real_clones():
    return OP.real_clones(PLAN)


# ---- report -----------------------------------------------------------------------------------------------
REPORT = report_settings(config)


def sheet_inputs(wildcards):
    inputs = RP.sheet_inputs(PLAN, REPORT, wildcards.clone)
    return {**inputs, "chunks": checked_chunks(inputs["chunks"])}


def sheet_params(wildcards):
    return RP.sheet_params(PLAN, REPORT, wildcards.clone)


def comparison_inputs(wildcards):
    return checked_chunks(RP.comparison_chunks(config, PLAN, REPORT, wildcards.class_set))


def comparison_params(wildcards):
    return RP.comparison_params(config, PLAN, REPORT, wildcards.class_set)


def clone_stats(wildcards):
    return OP.clone_stats(PLAN, wildcards.clone)


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
    """Every page of the report; a registered table or figure only when a rule of this workflow writes it."""
    return RP.report_outputs(
        config, PLAN, QUALITY_CLONES, lambda path: any(rule.is_producer(path) for rule in workflow.rules)
    )


# ---- quality of generated clones ------------------------------------------------------------------------
try:
    QUALITY_CLONES = QP.measured_clones(config, PLAN)
    QP.check_curation(config, PLAN)
    QUALITY_REFERENCES = QP.references(config, PLAN)
except ConfigError as error:
    raise WorkflowError(f"invalid config: {error}") from None


def quality_clip_folder():
    return QP.clip_folder(config) if QUALITY_CLONES else None


def quality_embed_inputs(wildcards):
    """CLIP is ancient: its key is in the path, so a rebuilt or re-downloaded copy recomputes nothing."""
    inputs = QP.embed_inputs(config, PLAN, wildcards, quality_clip_folder())
    return {**inputs, "model": ancient(inputs["model"])}


def quality_table_clones():
    return QP.table_clones(config, PLAN, QUALITY_CLONES)


def quality_all_embeddings():
    return QP.all_embeddings(config, PLAN, QUALITY_CLONES, QUALITY_REFERENCES)


def quality_references():
    return {clone: {"name": r["name"], "classes": r["classes"]} for clone, r in QUALITY_REFERENCES.items()}


def quality_reference_source(wildcards):
    return QP.reference_by_key(QUALITY_REFERENCES, wildcards.reference_key)


def quality_reference_inputs(wildcards):
    """CLIP (ancient, as for quality_embed) and the real folder when a rule of this workflow writes it."""
    inputs = {"model": ancient(paths.CLIP_CONFIG.format(folder=quality_clip_folder()))}
    folder = quality_reference_source(wildcards)["path"]
    return {**inputs, "folder": folder} if OP.built_here(folder) else inputs


def quality_sheet_chunks(wildcards):
    return RP.quality_sheet_chunks(PLAN, wildcards.clone)


def quality_sheet_chunk_files(wildcards):
    return list(quality_sheet_chunks(wildcards).values())


def quality_outputs():
    return OP.quality_outputs(QUALITY_CLONES)


# ---- dataset cards -----------------------------------------------------------------------------------
def card_inputs(wildcards):
    return OP.card_inputs(PLAN, QUALITY_CLONES, wildcards.clone)


def card_made_of(wildcards):
    return OP.card_made_of(config, PLAN, wildcards.clone)


def clone_generator(wildcards):
    """A generated clone's generator, model and licence (as its dataset card names them), for its report page."""
    made_of = card_made_of(wildcards)
    if "generator" not in made_of:  # a real clone: no generator (its page, if asked for, has no such section)
        return {}
    model = made_of["generator"]["model"]
    return {"generator": made_of["generator_name"], "model": model, "licence": card_licence(made_of)}


def card_outputs():
    return OP.card_outputs(PLAN)
