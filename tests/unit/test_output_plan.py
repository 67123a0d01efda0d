"""The planners of outputs and report pages (imagenet_sd.planning.outputs and .report), without Snakemake:
what each section of a config adds to the DAG, on a small config and variants of it, and on the demo config.
The rules call these functions through one-line adapters in rules/common.smk."""

import copy

import pytest
from conftest import REPO, demo_config
from snakemake.utils import validate

from imagenet_sd import paths
from imagenet_sd.planning import outputs as OP
from imagenet_sd.planning import report as RP
from imagenet_sd.planning.clones import build_plan
from imagenet_sd.planning.models import build_models
from imagenet_sd.planning.quality import measured_clones
from imagenet_sd.report.report import FIGURES, TABLES

SCHEMA = str(REPO / "schemas/config.schema.yaml")
# Two recipes on one class set (a and b: a comparison sheet), a clone that only draws more images of a's
# recipe and generator (a2: no comparison of its own), and a real clone.
SMALL = {
    "seed": 0,
    "class_sets": {"demo": {"sheet": "config/sheets/demo.tsv"}, "digits": {"sheet": "config/sheets/digits.tsv"}},
    "recipes": {"c": {"family": "c"}, "c_dc": {"family": "c, d_c"}},
    "pipelines": {"tiny-sd": {"seed": 0}},
    "generators": {"tiny": {"model": "resources/pipelines/tiny-sd", "guidance_scale": 2.0, "chunk_size": 4}},
    "clones": {
        "a": {"class_set": "demo", "recipe": "c", "generator": "tiny", "images_per_class": 6, "heldout_per_class": 2},
        "a2": {"class_set": "demo", "recipe": "c", "generator": "tiny", "images_per_class": 12},
        "b": {"class_set": "demo", "recipe": "c_dc", "generator": "tiny", "images_per_class": 6},
        "digits": {"class_set": "digits", "path": "resources/datasets/sklearn-digits", "heldout_per_class": 2},
    },
    "trainings": {"t": {}},
    "evalsets": {"a-heldout": {"clone": "a"}, "digits-heldout": {"clone": "digits"}},
    "runs": {
        "a": {"clone": "a", "training": "t", "evaluate": ["a-heldout", "digits-heldout"]},
        "digits": {"clone": "digits", "training": "t", "evaluate": ["digits-heldout"]},
        "b": {"clone": "b", "training": "t"},
    },
    "robustness": {
        "evalsets": ["a-heldout"],
        "attacks": {"fgsm": {"method": "fgsm"}, "pgd": {"method": "pgd"}},
        "epsilons": [1, 0.5],
    },
    "representation": {"evalsets": ["digits-heldout"]},
}
EVERY_RULE = lambda path: True  # noqa: E731 (a workflow where every registered source has its rule)


def planned(config):
    """The config as the Snakefile sees it (schema defaults filled in), its plan and its models."""
    config = copy.deepcopy(config)
    validate(config, SCHEMA)
    plan = build_plan(config, check_wnids=False)
    return config, plan, build_models(config, plan)


@pytest.fixture(autouse=True)
def at_repo(monkeypatch):
    monkeypatch.chdir(REPO)  # the sheets' paths are relative to the workflow


def variant(**sections):
    return {**copy.deepcopy(SMALL), **sections}


def test_attacks_are_planned_per_model_attacked_set_attack_and_epsilon():
    config, _, models = planned(SMALL)
    outputs = OP.attack_outputs(config, models)
    # only run a is evaluated on the attacked set; its other set and the other models get no attack
    assert sorted(outputs) == sorted(
        paths.ATTACK.format(model="a", evalset="a-heldout", attack=attack, eps=eps)
        for attack in ("fgsm", "pgd")
        for eps in ("1", "0.5")
    )


def test_a_run_without_attacks_plans_no_attack_output():
    config, _, models = planned(variant(robustness={"evalsets": ["a-heldout"], "attacks": {}}))
    assert OP.attack_outputs(config, models) == []
    config, _, models = planned(variant(robustness={"evalsets": [], "attacks": SMALL["robustness"]["attacks"]}))
    assert OP.attack_outputs(config, models) == []


def test_a_model_evaluated_on_two_attacked_sets_plans_both():
    robustness = {**SMALL["robustness"], "evalsets": ["a-heldout", "digits-heldout"], "epsilons": [1]}
    config, _, models = planned(variant(robustness=robustness))
    outputs = OP.attack_outputs(config, models)
    assert {p for p in outputs if p.startswith("results/models/a/")} == {
        paths.ATTACK.format(model="a", evalset=ev, attack=attack, eps="1")
        for ev in ("a-heldout", "digits-heldout")
        for attack in ("fgsm", "pgd")
    }
    assert sorted(p for p in outputs if p.startswith("results/models/digits/")) == [
        paths.ATTACK.format(model="digits", evalset="digits-heldout", attack=attack, eps="1")
        for attack in ("fgsm", "pgd")
    ]


def test_representation_statistics_and_their_table_follow_the_listed_sets():
    config, _, models = planned(SMALL)
    assert sorted(OP.representation_outputs(config, models)) == [
        paths.REPRESENTATION.format(model=m, evalset="digits-heldout") for m in ("a", "digits")
    ]
    assert OP.representation_table_outputs(config) == ["results/tables/representation.csv"]
    config, _, models = planned(variant(representation={"evalsets": []}))
    assert OP.representation_outputs(config, models) == []
    assert OP.representation_table_outputs(config) == []


def test_tables_list_only_the_models_they_show_with_their_kind_of_data():
    config, _, models = planned(
        variant(models={"torchvision": {"class_set": "demo", "weights": "ResNet50_Weights.IMAGENET1K_V1"}})
    )
    assert OP.model_data_kinds(models) == {"a": "synthetic", "digits": "real"}  # b and torchvision: no evaluation
    info = OP.model_table_info(config, models, "evaluate")
    assert set(info) == {"a", "digits"}
    assert info["a"] == {"clone": "a", "training": "t", "synthetic": True, "source": "run"}
    config["models"]["torchvision"]["evaluate"] = ["a-heldout"]
    config, _, models = planned(config)
    assert OP.model_table_info(config, models, "evaluate")["torchvision"] == {
        "clone": "",
        "training": "",
        "synthetic": False,
        "source": "state_dict",
    }
    assert OP.model_data_kinds(models)["torchvision"] == "real"


def test_clones_by_kind_and_their_prompt_files():
    _, plan, _ = planned(SMALL)
    assert OP.real_clones(plan) == ["digits"]
    assert set(OP.generated_clones(plan)) == {"a", "a2", "b"}
    table = OP.prompt_table_clones(plan)
    assert table["digits"]["prompts"] == [] and table["a2"]["images_per_class"] == 12
    assert table["a"]["prompts"] == table["a2"]["prompts"] != table["b"]["prompts"]  # recipe-keyed, shared
    assert OP.all_prompt_files(plan) == sorted(set(table["a"]["prompts"] + table["b"]["prompts"]))


def test_quality_outputs_exist_only_when_a_clip_measures_some_clone():
    config, plan, _ = planned(SMALL)
    assert measured_clones(config, plan) == [] and OP.quality_outputs([]) == []
    config, plan, _ = planned(variant(quality={"tiny": {"seed": 0}, "clones": ["b"]}))
    outputs = OP.quality_outputs(measured_clones(config, plan))
    assert set(paths.QUALITY_TABLES.values()) < set(outputs)
    assert [p for p in outputs if p.startswith("results/report/")] == ["results/report/clones/b/quality_worst.jpg"]


def test_cards_read_the_quality_table_only_of_measured_clones_and_record_what_made_the_clone():
    config, plan, _ = planned(SMALL)
    assert len(OP.card_outputs(plan)) == 2 * len(plan.clones)
    assert "quality" in OP.card_inputs(plan, ["a"], "a") and "quality" not in OP.card_inputs(plan, ["a"], "b")
    assert OP.card_inputs(plan, [], "digits")["stats"] == []  # a real clone has no chunk
    stats = OP.card_inputs(plan, [], "a")["stats"]
    assert len(stats) == 6 * (2 + 1)  # six classes: two train chunks of 4 images, one held-out chunk
    made_of = OP.card_made_of(config, plan, "a")
    assert made_of["recipes"] == {"c": config["recipes"]["c"]} and made_of["pipeline"] == config["pipelines"]["tiny-sd"]
    assert made_of["generator_key"] == plan.clones["a"].generator_key
    assert "recipes" not in OP.card_made_of(config, plan, "digits")


def test_clones_of_one_class_set_that_differ_in_recipe_or_generator_are_compared():
    config, plan, _ = planned(SMALL)
    assert RP.comparison_groups(config, plan) == {"demo": ["a", "b"]}  # a2 draws a's images: not compared
    settings = {"sheet_classes": 3}
    chunks = RP.comparison_chunks(config, plan, settings, "demo")
    assert len(chunks) == 2 * 3 and all(c.endswith("/000000-000004.tar") for c in chunks)
    params = RP.comparison_params(config, plan, settings, "demo")
    assert params["title"] == "class set demo: a vs b" and list(params["clones"]) == ["a", "b"]
    one = {name: c for name, c in SMALL["clones"].items() if name != "b"}
    config, plan, _ = planned(variant(clones=one, runs={}))
    assert RP.comparison_groups(config, plan) == {}


def test_a_contact_sheet_reads_the_first_chunk_of_an_even_sample_of_classes():
    _, plan, _ = planned(SMALL)
    classes = plan.clones["a"].classes
    sample = RP.sheet_classes(plan, {"sheet_classes": 3}, "a")
    indices = [i for i, _ in sample]
    assert len(indices) == 3 and indices[0] == 0 and indices[-1] == len(classes) - 1 and indices == sorted(indices)
    assert [e for _, e in sample] == [classes[i] for i in indices]
    inputs = RP.sheet_inputs(plan, {"sheet_classes": 3}, "a")
    assert len(inputs["chunks"]) == len(inputs["prompts"]) == 3
    assert inputs["chunks"][0] == plan.clone_chunks("a", "train")[0]
    params = RP.sheet_params(plan, {"sheet_classes": 3}, "a")
    assert [c["chunk"] for c in params["classes"]] == inputs["chunks"]
    assert RP.quality_sheet_chunks(plan, "a")[classes[1].wnid] == plan.clone_chunks("a", "train")[2]


def test_report_pages_follow_the_config_and_the_rules_that_write_registered_sources():
    config, plan, _ = planned(SMALL)
    pages = RP.report_outputs(config, plan, [], EVERY_RULE)
    quality_sources = set(paths.QUALITY_TABLES.values())
    assert {f"results/report/tables/{n}.html" for n, e in TABLES.items() if e.source not in quality_sources} < set(
        pages
    )
    assert not any(f"tables/{n}.html" in p for n, e in TABLES.items() if e.source in quality_sources for p in pages)
    assert {f"results/report/figures/{n}.png" for n in FIGURES} < set(pages)
    for clone in ("a", "a2", "b"):
        assert f"results/report/clones/{clone}/contact_sheet.jpg" in pages
    assert not any("/clones/digits/" in p for p in pages)
    assert "results/report/compare/demo.jpg" in pages
    assert {f"results/report/runs/{run}/curves.png" for run in SMALL["runs"]} < set(pages)
    without = RP.report_outputs(config, plan, ["a"], lambda path: path != TABLES["transfer"].source)
    assert "results/report/tables/transfer.html" not in without
    assert "results/report/tables/quality.html" in without


def test_the_demo_plans_its_pages_cards_and_per_model_outputs():
    config, plan, models = planned(demo_config())
    assert len(OP.card_outputs(plan)) == 2 * len(config["clones"])
    attacked = [(m, ev) for m, sets in OP.model_evalsets(models).items() for ev in sets]
    attacked = [pair for pair in attacked if pair[1] in config["robustness"]["evalsets"]]
    spec = config["robustness"]
    assert len(OP.attack_outputs(config, models)) == len(attacked) * len(spec["attacks"]) * len(spec["epsilons"])
    pages = RP.report_outputs(config, plan, measured_clones(config, plan), EVERY_RULE)
    assert len(pages) == len(set(pages))
    assert {f"results/report/runs/{run}/curves.png" for run in config["runs"]} < set(pages)
