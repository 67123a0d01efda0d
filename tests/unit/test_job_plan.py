"""What the jobs read and are given, planned without Snakemake: pack inputs and sources, prompts' recipes,
dataset indexes, evaluation settings, pipeline folders and the quality step's inputs (the functions that
rules/common.smk's input functions call with the job's wildcards)."""

import copy
import re
from types import SimpleNamespace

import pytest
from conftest import REPO
from test_output_plan import SMALL, planned, variant

from imagenet_sd import paths
from imagenet_sd.planning import adaptation as AP
from imagenet_sd.planning import models as MP
from imagenet_sd.planning import outputs as OP
from imagenet_sd.planning import quality as QP
from imagenet_sd.planning import transfer as TP

DIGITS = "resources/datasets/sklearn-digits"
CURATED = {"class_set": "demo", "recipe": "c", "generator": "tiny", "images_per_class": 3, "curation": {}}


@pytest.fixture(autouse=True)
def at_repo(monkeypatch):
    monkeypatch.chdir(REPO)


def test_pack_reads_every_chunk_of_a_generated_clone_and_only_a_real_folder_this_workflow_builds():
    config, plan, _ = planned(SMALL)
    inputs = OP.pack_inputs(config, plan, "a")
    assert inputs == {"train": plan.clone_chunks("a", "train"), "heldout": plan.clone_chunks("a", "heldout")}
    assert len(inputs["train"]) == 6 * 2 and len(inputs["heldout"]) == 6  # 6 images in chunks of 4; 2 held out
    assert OP.pack_inputs(config, plan, "digits") == {"train": [], "heldout": [], "folder": DIGITS}
    assert OP.pack_source(config, plan, "digits")["path"] == DIGITS
    assert OP.pack_source(config, plan, "a") is None
    external = {**SMALL["clones"]["digits"], "path": "data/imagenet/train"}
    config, plan, _ = planned(variant(clones={**SMALL["clones"], "digits": external}))
    assert "folder" not in OP.pack_inputs(config, plan, "digits")  # real ImageNet: read (and checked) by the job


def test_a_curated_clone_packs_from_more_images_with_the_clip_embeddings_of_its_classes():
    clones = {**copy.deepcopy(SMALL["clones"]), "best": CURATED}
    config, plan, _ = planned(variant(clones=clones, quality={"tiny": {"seed": 0}}))
    inputs = OP.pack_inputs(config, plan, "best")
    embeddings = QP.curation_embeddings(config, plan, "best")
    assert inputs["embeddings"] == list(embeddings.values()) and len(embeddings) == 6
    assert all(path.endswith("/train-6.npz") for path in embeddings.values())  # oversample 2 x 3 images
    source = OP.pack_source(config, plan, "best")
    assert source == {"curation": config["clones"]["best"]["curation"], "embeddings": embeddings}
    assert QP.curation_embeddings(config, plan, "a") == {}


def test_the_prompts_job_gets_its_recipe_and_every_recipe_it_mixes():
    recipes = {**SMALL["recipes"], "both": {"family": "mix", "mix": {"c": 1, "c_dc": 1}}}
    config, plan, _ = planned(variant(recipes=recipes))
    params = OP.recipe_params(config, plan, plan.recipe_key("both"))
    assert params["name"] == "both" and set(params["recipes"]) == {"both", "c", "c_dc"}
    assert OP.recipe_params(config, plan, plan.recipe_key("c"))["recipes"] == {"c": config["recipes"]["c"]}


def test_dataset_indexes_read_prepared_lists_held_out_splits_and_class_lists_but_not_user_folders(tmp_path):
    classes = tmp_path / "wnids.txt"
    classes.write_text("n01558993\n")
    evalsets = {**SMALL["evalsets"], "val": {"path": "data/imagenet/val", "classes": str(classes)}}
    transfer_sets = {
        "digits": {"source": "digits", "description": "shown in the table only", "group": "g"},
        "pets": {"source": "folder", "path": "data/pets"},
    }
    config, _, _ = planned(variant(evalsets=evalsets, transfer_sets=transfer_sets))
    assert TP.dataset_index_inputs(config, "digits", "train") == ["resources/transfer/digits/train.tsv"]
    assert TP.dataset_index_inputs(config, "pets", "test") == []
    assert TP.dataset_index_inputs(config, "a-heldout", "test") == [paths.HELDOUT.format(clone="a")]
    assert TP.dataset_index_inputs(config, "val", "test") == [str(classes)]
    assert MP.evalset_input(config, "a-heldout") == MP.evalset_folder(config, "a-heldout") == "results/clones/a/heldout"
    assert MP.evalset_input(config, "val") == [] and MP.evalset_folder(config, "val") == "data/imagenet/val"
    spec = TP.transfer_set_spec(config, "digits")  # the settings of its files; its labels rerun nothing
    assert spec["source"] == "digits" and not {"description", "group", "probe"} & set(spec)


def test_a_run_is_evaluated_with_its_training_recipe_and_an_external_model_with_its_own_settings():
    models = {
        "tv": {"class_set": "demo", "weights": "ResNet50_Weights.IMAGENET1K_V1"},
        "tv-288": {"class_set": "demo", "weights": "ResNet50_Weights.IMAGENET1K_V1", "eval_resolution": 288},
    }
    config, _, found = planned(variant(trainings={"t": {"eval_resolution": 96}}, models=models))
    recipe = {k: v for k, v in config["trainings"]["t"].items() if k != "flip"}  # a late key at its default
    assert MP.model_eval_training(config, found["a"]) == recipe
    assert MP.model_eval_resolution(config, found["a"]) == 96
    assert MP.model_eval_training(config, found["tv"]) == {"arch": "resnet50", "eval_resolution": 224}
    assert MP.model_eval_resolution(config, found["tv-288"]) == 288


def test_a_generator_loads_its_built_hub_or_adapted_pipeline():
    config, plan, _ = planned(SMALL)
    assert AP.model_folder(plan, "tiny") == "resources/pipelines/tiny-sd"
    assert AP.pipeline_folder(config, "CompVis/stable-diffusion-v1-4", None) == (
        "resources/hub/CompVis--stable-diffusion-v1-4/main"
    )
    assert AP.pipeline_folder(config, "config", "v1") == "config"  # a folder of the user's
    adaptation = {"model": "resources/pipelines/tiny-sd", "clone": "digits", "recipe": "c", "images_per_class": 2}
    generators = {**SMALL["generators"], "adapted": {"adaptation": "d", "chunk_size": 4}}
    config, plan, _ = planned(variant(adaptations={"d": adaptation}, generators=generators))
    key = AP.adaptation_key(plan, "d")
    assert AP.model_folder(plan, "adapted") == paths.ADAPTED_FOLDER.format(adaptation_key=key)
    inputs = AP.adaptation_inputs(plan, key)
    assert inputs["base"] == "resources/pipelines/tiny-sd/model_index.json"
    assert inputs["prompts"] == AP.adaptation_prompt_files(plan, "d") and len(inputs["prompts"]) == 10
    params = AP.adaptation_params(plan, key)
    assert params["adaptation"] == "d" and params["folder"] == AP.model_folder(plan, "adapted")
    assert params["classes"] == [e.wnid for e in plan.clones["digits"].classes]


def test_a_class_embedding_reads_the_chunks_of_its_images_and_the_tables_read_every_measured_class():
    config, plan, _ = planned(variant(quality={"tiny": {"seed": 0}}))
    clone = plan.clones["a2"]
    wildcards = SimpleNamespace(
        generator_key=clone.generator_key, recipe_key=clone.recipe_key, ckey=clone.classes[0].key, images="12"
    )
    inputs = QP.embed_inputs(config, plan, wildcards, QP.clip_folder(config))
    assert inputs["tars"] == [c for c in plan.clone_chunks("a2", "train") if f"/{clone.classes[0].key}/" in c]
    assert len(inputs["tars"]) == 3 and inputs["model"] == f"{paths.TINY_CLIP_FOLDER}/config.json"
    measured = QP.measured_clones(config, plan)
    assert set(QP.table_clones(config, plan, measured)) == {"a", "a2", "b"}
    # a and a2 share their images' files but not their embedding files (a2 embeds 12 images per class)
    assert len(QP.all_embeddings(config, plan, measured)) == 3 * 6


def test_missing_user_folders_are_named_but_a_folder_a_rule_writes_is_not(tmp_path):
    clones = {**copy.deepcopy(SMALL["clones"]), "photos": {"class_set": "digits", "path": str(tmp_path / "none")}}
    evalsets = {**SMALL["evalsets"], "val": {"path": str(tmp_path / "val")}, "here": {"path": str(tmp_path)}}
    config, plan, _ = planned(variant(clones=clones, evalsets=evalsets))
    warnings = OP.missing_folders(config, plan)
    assert [w.split(":")[0] for w in warnings] == ["evalsets.val.path", "clones.photos.path"]  # not digits'
    assert str(tmp_path / "none") in warnings[1]


def matches(pattern: str, path: str) -> bool:
    """Whether `path` is an output of a rule with this pattern, each wildcard held to its constraint."""
    parts = re.split(r"\{(\w+)\}", pattern)
    regex = "".join(re.escape(p) if i % 2 == 0 else f"(?:{paths.WILDCARDS[p]})" for i, p in enumerate(parts))
    return re.fullmatch(regex, path) is not None


def test_a_planned_probe_is_an_output_of_the_rule_of_its_kind_only():
    transfer_sets = {"digits": {"source": "digits"}, "pets": {"path": "data/pets", "probe": "linear"}}
    runs = {**SMALL["runs"], "a": {**SMALL["runs"]["a"], "transfer": ["digits", "pets"]}}
    config, _, models = planned(variant(transfer_sets=transfer_sets, runs=runs))
    for dataset, kind, other in (("digits", "logistic", "linear"), ("pets", "linear", "logistic")):
        path = TP.probe_path(config, "a", dataset, 0)
        assert matches(paths.probe_output(kind), path) and not matches(paths.probe_output(other), path)
    seeds = config["transfer"]["seeds"]
    assert len(TP.probe_outputs(config, models)) == 2 * len(seeds)
