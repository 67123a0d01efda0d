"""The paper's experiment grids as shipped configs: chunks shared between them where settings match, clones
that grow by new chunks only, and a fixed training budget across the scaling study."""

from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

from imagenet_sd.generate.families import FAMILIES, declared_family
from imagenet_sd.planning.clones import build_plan

REPO = Path(__file__).resolve().parents[2]


def plan_of(configfile: str):
    config = yaml.safe_load((REPO / configfile).read_text())
    validate(config, str(REPO / "schemas/config.schema.yaml"))
    return build_plan(config, check_wnids=False)


@pytest.fixture(scope="module", autouse=True)
def in_repo(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.chdir(REPO)  # sheets are relative to the workflow root
    yield
    mp.undo()


def chunks(plan, clone: str) -> set[str]:
    return set(plan.clone_chunks(clone, "train"))


def test_the_ablation_reuses_the_imagenet100_files_of_imagenet1k_sd_where_settings_match():
    ablation, in1k, in100 = (plan_of(f"config/{n}.yaml") for n in ("ablation_in100", "imagenet1k_sd", "imagenet100_sd"))
    shared = chunks(ablation, "in100-c_dc-g2")
    assert len(shared) == 100
    assert shared <= chunks(in1k, "in1k-sd")  # the same files: same generator, recipe and class keys
    assert shared == chunks(in100, "in100-sd")
    assert not chunks(ablation, "in100-c_dc-g75") & chunks(in1k, "in1k-sd")  # guidance 7.5 goes beside, never over
    families = {ablation.clones[c].recipe_key.rsplit("-", 1)[0] for c in ablation.clones if not ablation.clones[c].real}
    assert families == {"c", "c_hc", "c_dc", "c_hc_b", "multi_c_hc"}


def test_the_guidance_grid_shares_the_guidance_2_clone_with_imagenet1k_sd():
    grid, in1k = plan_of("config/imagenet1k_guidance.yaml"), plan_of("config/imagenet1k_sd.yaml")
    assert chunks(grid, "in1k-sd") == chunks(in1k, "in1k-sd")
    assert len(chunks(grid, "in1k-c_dc-g75") | chunks(grid, "in1k-c_hc_b-g75")) == 2000


def test_each_scaled_clone_adds_only_new_chunks_to_the_smaller_ones():
    plan = plan_of("config/scaling_in100.yaml")
    sizes = {"in100-1x": 1, "in100-2x": 2, "in100-10x": 10, "in100-20x": 20, "in100-50x": 50}
    previous: set[str] = set()
    for clone, scale in sizes.items():
        mine = chunks(plan, clone)
        assert previous < mine and len(mine) == 100 * scale
        previous = mine
    # growing from 10x to 20x schedules exactly 10 new 1,300-image chunks per class
    assert len(chunks(plan, "in100-20x") - chunks(plan, "in100-10x")) == 100 * 10
    assert chunks(plan, "in100-1x") == chunks(plan_of("config/imagenet100_sd.yaml"), "in100-sd")


def test_the_scaling_runs_see_the_same_number_of_images():
    config = yaml.safe_load((REPO / "config/scaling_in100.yaml").read_text())
    seen = {
        run: config["trainings"][r["training"]]["epochs"] * config["clones"][r["clone"]]["images_per_class"]
        for run, r in config["runs"].items()
    }
    assert len(set(seen.values())) == 1, seen


def test_the_generator_study_has_one_clone_per_family_on_the_same_classes_prompts_and_training():
    config = yaml.safe_load((REPO / "config/generators_in100.yaml").read_text())
    plan = plan_of("config/generators_in100.yaml")
    synthetic = {name: c for name, c in plan.clones.items() if not c.real}
    generators = [config["clones"][name]["generator"] for name in synthetic]
    families = [declared_family(config, g, None).name for g in generators]
    assert sorted(families) == sorted(FAMILIES)  # every family once
    entries = [config["clones"][name] for name in synthetic]
    assert {(c["class_set"], c["images_per_class"]) for c in entries} == {("imagenet100", 1300)}
    assert {config["recipes"][c["recipe"]]["family"] for c in entries} == {"c, d_c"}
    assert {r["training"] for r in config["runs"].values()} == {"trex-rn50"}
    assert {r["clone"] for r in config["runs"].values()} == set(config["clones"])  # and the real baseline
    for name in synthetic:
        assert len(chunks(plan, name)) == 100  # one 1,300-image chunk per class
    # the SD v1.4 clone is config/imagenet100_sd.yaml's files; the seven others are new, each its own
    assert chunks(plan, "in100-sd") == chunks(plan_of("config/imagenet100_sd.yaml"), "in100-sd")
    assert len(set().union(*(chunks(plan, name) for name in synthetic))) == 800
