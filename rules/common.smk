# The only Python among the rules: config validation and the input functions. Logic lives in imagenet_sd.plan.
import os
import sys

sys.path.insert(0, workflow.basedir)

from snakemake.exceptions import WorkflowError
from snakemake.logging import logger
from snakemake.utils import validate

from imagenet_sd import adaptation_plan as AP
from imagenet_sd import paths
from imagenet_sd import quality_plan as QP
from imagenet_sd import transfer_plan as TP
from imagenet_sd.config import ConfigError, job_params, schema_defaults
from imagenet_sd.evaluate import protocols
from imagenet_sd.generate.chunk_check import CONFIGFILES_ENV, DamagedChunk, size_problem
from imagenet_sd.paths import hub_folder, hub_model_id
from imagenet_sd.plan import build_plan, recipe_dependencies
from imagenet_sd.prompts.prompts import scene_files
from imagenet_sd.quality.cards import licence as card_licence
from imagenet_sd.report.contact_sheets import sample_indices
from imagenet_sd.report.references import reference_facts
from imagenet_sd.report.report import FIGURES, TABLES, caption_text, report_settings
from imagenet_sd.report.tables import run_budgets, training_budget
from imagenet_sd.runtime import export_cache_dirs, export_pythonpath

BUILT_DATASETS = {"resources/datasets/sklearn-digits"}  # real image sets a local rule writes (no download)

export_pythonpath(workflow.basedir)  # scripts run in child processes, locally and inside SLURM jobs
# The configs of this run, for the command a job prints to regenerate a damaged chunk (imagenet_sd.generate.chunk_check).
os.environ[CONFIGFILES_ENV] = os.pathsep.join(map(str, workflow.overwrite_configfiles))
export_cache_dirs()  # no library cache in /tmp
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
        logger.warning(
            f"evalsets.{_name}.path: folder {_spec['path']} does not exist yet; its evaluate jobs "
            "will fail until it holds the images (ImageFolder layout, one sub-folder per wnid)"
        )

for _name, _clone in PLAN.clones.items():
    if _clone.real and not os.path.isdir(_clone.source["path"]) and _clone.source["path"] not in BUILT_DATASETS:
        logger.warning(
            f"clones.{_name}.path: folder {_clone.source['path']} does not exist yet; its pack job will "
            "fail until it holds the images (ImageFolder layout, one sub-folder per wnid)"
        )

FETCHED = {m.checkpoint: m.fetch for m in MODELS.values() if m.fetch}  # local file -> URL / weights name
PREP_KEY = TP.preprocessing_key(config)
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


def pipeline_folder(model, revision):
    """The local folder of a pipeline `model`: built here, the user's own, or prefetched from the hub."""
    built = AP.built_pipeline_of(config, model)
    if built:
        return paths.PIPELINE_FOLDER.format(pipeline=built)
    if os.path.isdir(model):
        return model
    return hub_folder(model, revision)


def model_folder(generator):
    """The local folder a generator's pipeline loads from: adapted here, or its model's (pipeline_folder)."""
    spec = config["generators"][generator]
    if spec.get("adaptation"):
        return AP.adapted_folder(PLAN, spec["adaptation"])
    return pipeline_folder(spec["model"], spec["revision"])


# ---- adaptation of a pipeline on a real clone (imagenet_sd.adaptation_plan) ------------------------------
def adaptation_name(wildcards):
    return AP.by_adaptation_key(PLAN, wildcards.adaptation_key)


def adaptation_inputs(wildcards):
    """The base pipeline (ancient, as a generator's), the real clone's train shards and the prompt files."""
    name = adaptation_name(wildcards)
    spec = config["adaptations"][name]
    return {
        "base": ancient(paths.model_index(pipeline_folder(spec["model"], spec["revision"]))),
        "index": paths.SHARD_INDEX.format(clone=spec["clone"]),
        "shards": paths.SHARDS.format(clone=spec["clone"]),
        "prompts": AP.adaptation_prompt_files(PLAN, name),
    }


def adaptation_params(wildcards):
    """What the job needs besides its inputs; its settings are those in the key (no runtime setting)."""
    name = adaptation_name(wildcards)
    spec = config["adaptations"][name]
    return {
        "adaptation": name,
        "base_dir": pipeline_folder(spec["model"], spec["revision"]),
        "classes": [e.wnid for e in PLAN.clones[spec["clone"]].classes],
        "images_per_class": spec.get("images_per_class"),
        "settings": AP.trained_settings(spec),
        "folder": paths.ADAPTED_FOLDER.format(adaptation_key=wildcards.adaptation_key),
    }


def generator_pipeline(wildcards):
    """model_index.json of the pipeline folder. Ancient: rebuilding or re-downloading it changes no image
    (the model id, revision and tiny-pipeline settings are part of the generator key)."""
    return ancient(paths.model_index(model_folder(generator_name(wildcards))))


# ---- prompts, generation -------------------------------------------------------------------------
def recipe_scene_files(wildcards):
    """Scene lists the recipe (and the recipes it mixes) read. Ancient: a touched list regenerates nothing."""
    return [ancient(f) for f in scene_files(recipe_params(wildcards)["recipes"])]


def class_wnid(wildcards):
    return PLAN.class_entry(wildcards.ckey).wnid


def class_name_override(wildcards):
    return PLAN.class_entry(wildcards.ckey).name


def prompt_table_clones():
    """Per generated clone, its prompt files in class order and its images per class (the prompt table)."""
    return {
        name: {"prompts": PLAN.clone_prompts(name), "images_per_class": c.images_per_class}
        for name, c in PLAN.clones.items()
    }


def generator_name(wildcards):
    return PLAN.by_generator_key(wildcards.generator_key)


def generator_model_dir(wildcards):
    return model_folder(generator_name(wildcards))


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
    inputs = {
        "train": checked_chunks(PLAN.clone_chunks(wildcards.clone, "train")),
        "heldout": checked_chunks(PLAN.clone_chunks(wildcards.clone, "heldout")),
    }
    if PLAN.clones[wildcards.clone].curation:
        inputs["embeddings"] = [path for _, path in curation_embeddings(wildcards).items()]
    source = PLAN.clones[wildcards.clone].source
    if source and os.path.normpath(source["path"]) in BUILT_DATASETS:
        inputs["folder"] = source["path"]  # a real set this workflow writes; real ImageNet is external
    return inputs


def curation_embeddings(wildcards):
    """wnid -> CLIP embedding file of a curated clone's classes (pack keeps the best of their images)."""
    if not PLAN.clones[wildcards.clone].curation:
        return {}
    return dict(QP.class_embeddings(config, PLAN, wildcards.clone))


def clone_source(wildcards):
    """A real clone's ImageFolder settings; a curated clone's curation and CLIP embedding files; else None.
    (One param for both: a new param would change the recorded params of every pack job, and rerun packing
    and training of clones that did not change.)"""
    c = PLAN.clones[wildcards.clone]
    if c.curation:
        return {"curation": c.curation, "embeddings": curation_embeddings(wildcards)}
    return c.source


def run_clone(wildcards):
    return config["runs"][wildcards.run]["clone"]


def evalset_images(evalset):
    """Folder of an evaluation set: a clone's held-out split (built here) or the user's real images."""
    spec = config["evalsets"][evalset]
    return paths.HELDOUT.format(clone=spec["clone"]) if "clone" in spec else spec["path"]


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
    """Evaluation settings: a run's training recipe; for an external model, its arch and eval resolution."""
    m = MODELS[wildcards.model]
    if m.source == "run":
        return job_params("trainings", config["trainings"][config["runs"][m.name]["training"]])
    return {"arch": m.arch, "eval_resolution": m.eval_resolution}


def model_table_info(section):
    """Per model with `evaluate` (or `transfer`) entries, what its table prints beside its numbers. Only those:
    adding a model to the config then reruns no table it does not appear in."""
    return {
        name: {
            "clone": config["runs"].get(name, {}).get("clone", ""),
            "training": config["runs"].get(name, {}).get("training", ""),
            "synthetic": m.synthetic,
            "source": m.source,
        }
        for name, m in MODELS.items()
        if getattr(m, section)
    }


# ---- datasets (transfer sets and evaluation sets), features and probes -----------------------------------
def dataset_index_input(wildcards):
    """Prepared lists, clone held-out splits and an evaluation set's class list are DAG inputs; user folders
    are read (and checked) by the job."""
    if wildcards.dataset in config["transfer_sets"]:
        root = TP.dataset_root(config, wildcards.dataset)
        return [f"{root}/{wildcards.part}.tsv"] if root.startswith("resources/transfer/") else []
    spec = config["evalsets"][wildcards.dataset]
    return ([evalset_images(wildcards.dataset)] if "clone" in spec else []) + (
        [spec["classes"]] if spec.get("classes") else []
    )


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
    return {
        name: {"group": s.get("group", ""), "summary": s.get("summary", True), "description": s.get("description", "")}
        for name, s in config["transfer_sets"].items()
    }


def all_prompt_files():
    return sorted({p for clone in PLAN.clones for p in PLAN.clone_prompts(clone)})


def transfer_set_spec(wildcards):
    """The settings that determine a prepared set's files (not its table group, description or probe)."""
    spec = config["transfer_sets"][wildcards.dataset]
    return {k: spec.get(k) for k in ("source", "dataset", "image_size", "test_fraction") if k in spec}


# ---- models: every run is a model of the same name -------------------------------------------------


def model_evalsets():
    """Evaluation sets of every model (runs and external models)."""
    return {name: list(m.evaluate) for name, m in MODELS.items()}


def model_data_kinds():
    """Per model evaluated on some set, whether it was trained on real or synthetic images (for the robustness
    and representation tables; a model that is only probed changes neither)."""
    return {name: "synthetic" if m.synthetic else "real" for name, m in MODELS.items() if m.evaluate}


def model_eval_resolution(wildcards):
    training = model_eval_training(wildcards)
    return training.get("eval_resolution", schema_defaults("trainings")["eval_resolution"])


def evalset_spec(wildcards):
    """What scoring reads of an evaluation set: not its labels, whose edits rerun nothing; `resize` resolved."""
    return TP.scoring_spec(config["evalsets"][wildcards.evalset])


def evalset_folder(wildcards):
    return evalset_images(wildcards.evalset)


# ---- robustness and representation -----------------------------------------------------------------


def eps_label(eps):
    """An epsilon (in 1/255) as it appears in a path: 1 -> '1', 0.5 -> '0.5'."""
    return f"{eps:g}"


def attack_outputs():
    """One file per (model, attacked set, attack, epsilon): adding an attack or an epsilon adds only its own."""
    spec = config["robustness"]
    return [
        paths.ATTACK.format(model=model, evalset=ev, attack=attack, eps=eps_label(eps))
        for model, sets in model_evalsets().items()
        for ev in sets
        if ev in spec["evalsets"]
        for attack in spec["attacks"]
        for eps in spec["epsilons"]
    ]


def attack_settings(wildcards):
    """The attack's settings, defaults filled in (a changed setting reruns only that attack's jobs)."""
    return protocols.attack_settings(config, wildcards.attack)


def attack_epsilon(wildcards):
    return float(wildcards.eps)


def representation_outputs():
    spec = config["representation"]
    return [
        paths.REPRESENTATION.format(model=model, evalset=ev)
        for model, sets in model_evalsets().items()
        for ev in sets
        if ev in spec["evalsets"]
    ]


def representation_features(wildcards):
    """Test-split features of the model on the set (features_file comes with the feature-extraction rule)."""
    return features_file(wildcards.model, wildcards.evalset, "test")


def representation_table_outputs():
    """The representation table, when the config asks for statistics (they need the features rule)."""
    return ["results/tables/representation.csv"] if config["representation"]["evalsets"] else []


def real_clones():
    return sorted(name for name, clone in PLAN.clones.items() if clone.real)


# ---- report -----------------------------------------------------------------------------------------------
REPORT = report_settings(config)


def sheet_classes(clone):
    """The fixed sample of classes a contact sheet shows: evenly spaced over the clone's class sheet."""
    classes = PLAN.clones[clone].classes
    return [(i, classes[i]) for i in sample_indices(len(classes), REPORT["sheet_classes"])]


def first_chunk(clone, entry):
    c = PLAN.clones[clone]
    start, stop = c.chunks("train")[0]
    return paths.chunk(c.generator_key, c.recipe_key, "train", entry.key, start, stop)


def sheet_inputs(wildcards):
    """Only the first train chunk of each sampled class (and its prompt file), never the whole clone."""
    sample = sheet_classes(wildcards.clone)
    c = PLAN.clones[wildcards.clone]
    return {
        "chunks": checked_chunks([first_chunk(wildcards.clone, e) for _, e in sample]),
        "prompts": [paths.PROMPTS.format(recipe_key=c.recipe_key, ckey=e.key) for _, e in sample],
    }


def sheet_params(wildcards):
    c = PLAN.clones[wildcards.clone]
    return {
        "title": f"clone {c.name}: recipe {c.recipe}, generator {c.generator}",
        "classes": [
            {
                "index": i,
                "wnid": e.wnid,
                "chunk": first_chunk(c.name, e),
                "prompts": paths.PROMPTS.format(recipe_key=c.recipe_key, ckey=e.key),
            }
            for i, e in sheet_classes(c.name)
        ],
    }


def comparison_groups():
    """Class sets drawn by two or more clones that differ in recipe or generator -> those clones."""
    groups = {}
    for name, c in generated_clones().items():
        groups.setdefault(config["clones"][name]["class_set"], {}).setdefault((c.recipe_key, c.generator_key), name)
    return {cs: sorted(by_key.values()) for cs, by_key in groups.items() if len(by_key) > 1}


def comparison_inputs(wildcards):
    clones = comparison_groups()[wildcards.class_set]
    return checked_chunks([first_chunk(clone, e) for clone in clones for _, e in sheet_classes(clone)])


def comparison_params(wildcards):
    clones = comparison_groups()[wildcards.class_set]
    return {
        "title": f"class set {wildcards.class_set}: " + " vs ".join(clones),
        "clones": {
            clone: {
                "caption": f"{clone}: {PLAN.clones[clone].recipe}, {PLAN.clones[clone].generator}",
                "classes": [
                    {"index": i, "wnid": e.wnid, "chunk": first_chunk(clone, e)} for i, e in sheet_classes(clone)
                ],
            }
            for clone in clones
        },
    }


def clone_stats(wildcards):
    return PLAN.clone_chunks(wildcards.clone, "train", stats=True) + PLAN.clone_chunks(
        wildcards.clone, "heldout", stats=True
    )


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
    for clone in generated_clones():
        pages += [f"results/report/clones/{clone}/contact_sheet.jpg", f"results/report/clones/{clone}/generation.html"]
    pages += [f"results/report/compare/{class_set}.jpg" for class_set in comparison_groups()]
    pages += [f"results/report/runs/{run}/curves.png" for run in config["runs"]]
    keys = [AP.adaptation_key(PLAN, name) for name in config.get("adaptations", {})]
    pages += [f"results/report/adaptations/{key}/losses.png" for key in keys]
    return pages


def generated_clones():
    """Clones made by a generator (a real clone has no chunks to draw a contact sheet from)."""
    return {name: c for name, c in PLAN.clones.items() if not c.real}


def produced(path):
    """Whether a rule of this workflow writes `path` (a registered table whose rule is absent is left out), and
    this config asks for it (the quality tables only when a CLIP is set)."""
    if path in paths.QUALITY_TABLES.values() and not QUALITY_CLONES:
        return False
    return any(rule.is_producer(path) for rule in workflow.rules)


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
    """The class's train chunks in [0, count), its prompt file (the class name) and CLIP. CLIP is ancient:
    its key is in the path, so a rebuilt or re-downloaded copy recomputes nothing."""
    return {
        "tars": QP.embedding_chunks(
            config, PLAN, wildcards.generator_key, wildcards.recipe_key, wildcards.ckey, int(wildcards.images)
        ),
        "prompts": paths.PROMPTS.format(recipe_key=wildcards.recipe_key, ckey=wildcards.ckey),
        "model": ancient(paths.CLIP_CONFIG.format(folder=quality_clip_folder())),
    }


def quality_table_clones():
    """Per measured clone, (wnid, embedding file) of each of its classes, in class order."""
    return {clone: QP.class_embeddings(config, PLAN, clone) for clone in QUALITY_CLONES}


def quality_all_embeddings():
    """The generated clones' embeddings and those of their real references (FD, KID)."""
    clones = [*quality_table_clones().values(), *(r["classes"] for r in QUALITY_REFERENCES.values())]
    return sorted({path for classes in clones for _, path in classes})


def quality_references():
    return {clone: {"name": r["name"], "classes": r["classes"]} for clone, r in QUALITY_REFERENCES.items()}


def quality_reference_source(wildcards):
    return QP.reference_by_key(QUALITY_REFERENCES, wildcards.reference_key)


def quality_reference_inputs(wildcards):
    """CLIP (ancient, as for quality_embed) and the real folder when a rule of this workflow writes it."""
    inputs = {"model": ancient(paths.CLIP_CONFIG.format(folder=quality_clip_folder()))}
    if quality_reference_source(wildcards)["path"] in BUILT_DATASETS:
        inputs["folder"] = quality_reference_source(wildcards)["path"]
    return inputs


def quality_sheet_chunks(wildcards):
    """wnid -> first train chunk of every class of the clone (the sheet reads those of the classes it shows)."""
    return {e.wnid: first_chunk(wildcards.clone, e) for e in PLAN.clones[wildcards.clone].classes}


def quality_sheet_chunk_files(wildcards):
    return list(quality_sheet_chunks(wildcards).values())


def quality_outputs():
    sheets = [f"results/report/clones/{clone}/quality_worst.jpg" for clone in QUALITY_CLONES]
    return list(paths.QUALITY_TABLES.values()) + sheets if QUALITY_CLONES else []


# ---- dataset cards -----------------------------------------------------------------------------------
def card_inputs(wildcards):
    """The pack's index, the chunks' stats (re-draws) and, when the clone was measured, the quality table."""
    inputs = {"index": paths.SHARD_INDEX.format(clone=wildcards.clone), "stats": clone_stats(wildcards)}
    if wildcards.clone in QUALITY_CLONES:
        inputs["quality"] = paths.QUALITY_TABLES["clones"]
    return inputs


def card_made_of(wildcards):
    """The config entries that made the clone, as the card records them (a real clone: the clone and its sheet)."""
    c, spec = PLAN.clones[wildcards.clone], config["clones"][wildcards.clone]
    made_of = {"seed": config["seed"], "clone": spec, "class_set": config["class_sets"][spec["class_set"]]}
    if c.real:
        return made_of
    recipes = [c.recipe, *recipe_dependencies(config, c.recipe)]
    generator, built = config["generators"][c.generator], PLAN.built_pipeline(c.generator)
    adaptation = AP.card_entry(PLAN, generator["adaptation"]) if generator.get("adaptation") else None
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


def clone_generator(wildcards):
    """A generated clone's generator, model and licence (as its dataset card names them), for its report page."""
    made_of = card_made_of(wildcards)
    if "generator" not in made_of:  # a real clone: no generator (its page, if asked for, has no such section)
        return {}
    model = made_of["generator"]["model"]
    return {"generator": made_of["generator_name"], "model": model, "licence": card_licence(made_of)}


def card_outputs():
    return [path.format(clone=clone) for clone in PLAN.clones for path in (paths.CARD_JSON, paths.CARD_MARKDOWN)]
