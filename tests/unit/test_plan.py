"""Unit tests of the plan: output keys, chunk ranges, sheets and early errors."""

import copy
from pathlib import Path

import pytest
from conftest import toy_config
from snakemake.utils import validate

from imagenet_sd.config import ConfigError
from imagenet_sd.planning.clones import build_plan
from imagenet_sd.planning.keys import chunk_ranges, class_key
from imagenet_sd.planning.sheets import read_sheet
from imagenet_sd.prompts.wordnet import unknown_wnids

SCHEMA = str(Path(__file__).resolve().parents[2] / "schemas/config.schema.yaml")
DATA_NOUN = Path("/usr/share/wordnet/data.noun")


def validated(config):
    config = copy.deepcopy(config)
    validate(config, SCHEMA)
    return config


@pytest.fixture
def config(monkeypatch):
    monkeypatch.chdir(Path(SCHEMA).parents[1])
    return validated(toy_config())


def test_chunks_are_aligned_so_raising_the_count_keeps_earlier_chunks():
    assert chunk_ranges(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert chunk_ranges(16, 4)[:2] == chunk_ranges(8, 4)
    assert chunk_ranges(0, 4) == []


def test_a_name_override_gives_the_class_its_own_key():
    assert class_key("n03584829", None) == "n03584829"
    assert class_key("n03584829", "clothes iron") != class_key("n03584829", "golf iron")
    assert class_key("n03584829", "clothes iron").startswith("n03584829-")


def test_generator_key_follows_pixels_not_runtime_settings(config):
    key = build_plan(config).generator_key("tiny")
    faster = copy.deepcopy(config)
    faster["generators"]["tiny"].update(batch_size=64, chunk_size=100, compile=True, attention="default")
    assert build_plan(faster).generator_key("tiny") == key
    other = copy.deepcopy(config)
    other["generators"]["tiny"]["guidance_scale"] = 7.5
    assert build_plan(other).generator_key("tiny") != key
    bumped = copy.deepcopy(config)
    bumped["generators"]["tiny"]["output_version"] = 2
    assert build_plan(bumped).generator_key("tiny") != key


def test_editing_the_tiny_pipeline_changes_the_generator_key(config):
    key = build_plan(config).generator_key("tiny")
    config["pipelines"]["tiny-sd"]["seed"] = 1
    assert build_plan(config).generator_key("tiny") != key


def test_recipe_key_follows_prompt_settings(config):
    key = build_plan(config).recipe_key("c_dc")
    config["recipes"]["c_dc"]["tokenizer"] = "elsewhere"  # counting tool only
    assert build_plan(config).recipe_key("c_dc") == key
    config["recipes"]["c_dc"]["lemmas"] = "all"
    assert build_plan(config).recipe_key("c_dc") != key


def test_clone_paths_are_keyed_by_generator_recipe_split_class_and_range(config):
    config["generators"]["tiny"]["chunk_size"] = 6
    config["clones"]["demo"].update(images_per_class=16, heldout_per_class=5)
    plan = build_plan(config)
    paths = plan.clone_chunks("demo", "train")
    n_classes = len(plan.clones["demo"].classes)
    assert len(paths) == n_classes * 3  # 0-6, 6-12, 12-16
    g, r = plan.generator_key("tiny"), plan.recipe_key("c_dc")
    assert paths[:3] == [
        f"results/generated/{g}/{r}/train/n01558993/{a}.tar"
        for a in ("000000-000006", "000006-000012", "000012-000016")
    ]
    assert any("/n03584829-" in p for p in paths)  # the sheet renames "iron"
    assert len(plan.clone_chunks("demo", "heldout")) == n_classes


def test_sheet_errors_name_the_line_and_the_problem(tmp_path):
    bad = tmp_path / "s.tsv"
    bad.write_text("wnid\tname\nn01558993\t\nrobin\t\n")
    with pytest.raises(ConfigError, match=r"line 3: 'robin'"):
        read_sheet(bad)
    bad.write_text("wnid\nn01558993\nn01558993\n")
    with pytest.raises(ConfigError, match="listed twice"):
        read_sheet(bad)
    bad.write_text("id\nn01558993\n")
    with pytest.raises(ConfigError, match="`wnid` column"):
        read_sheet(bad)


@pytest.mark.skipif(not DATA_NOUN.exists(), reason="Debian's wordnet-base is not installed")
def test_unknown_wnids_are_found_by_offset():
    assert unknown_wnids(["n01558993", "n03584829", "n02012849"], DATA_NOUN) == []
    assert unknown_wnids(["n01558994", "n99999999", "n00001740"], DATA_NOUN) == ["n01558994", "n99999999"]


def test_cross_references_are_checked(config):
    config["runs"]["demo"]["evaluate"] = ["imagenet-val"]
    with pytest.raises(ConfigError, match=r"runs.demo.evaluate: unknown evalset 'imagenet-val'"):
        build_plan(config)


def test_representation_of_a_corruption_set_is_refused(config):
    config["evalsets"]["c"] = {"path": "c", "layout": "corruptions"}
    config["representation"]["evalsets"].append("c")
    with pytest.raises(ConfigError, match=r"representation.evalsets: 'c' is a corruption set; frozen features need"):
        build_plan(config)


def test_a_mix_of_unknown_recipes_is_an_error(config):
    config["recipes"]["both"] = {"family": "mix", "mix": {"c_dc": 1, "c_hc": 1}}
    with pytest.raises(ConfigError, match=r"recipes.both.mix: unknown recipe 'c_hc'"):
        build_plan(validated(config))
