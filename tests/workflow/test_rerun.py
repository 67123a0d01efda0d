"""The rerun contract (docs/design.md): after a completed run, one change recomputes exactly what it touches.

One small run is completed once (three clones over three classes, one chunk each, one tiny training run
evaluated on a small real-image folder, tables); each case copies it (mtimes and Snakemake's metadata
included), makes one change, and checks which
jobs a dry run schedules (by rule, and which chunk files) and, where the contract is about files, runs the
change and compares bytes and mtimes.
"""

from __future__ import annotations

import copy
import hashlib
import os
import re
import shutil
from collections import Counter
from pathlib import Path

import pytest
import yaml
from conftest import REPO, copy_workflow, parse_job_stats, run_snakemake, toy_config, write_config
from PIL import Image
from snakemake.utils import validate

from imagenet_sd import paths
from imagenet_sd.planning.clones import build_plan

BIG = ["n01558993", "n02123045"]  # robin, tabby
SMALL = ["n02123045"]  # a subset of BIG, same recipe and generator (like IN-100 inside IN-1K)
OTHER = ["n02701002"]  # ambulance, under another recipe
NEW_CLASS = "n07753275"  # pineapple
CLONES = ("big", "small", "other")
TARGETS = [
    *(f"results/clones/{c}/train.json" for c in CLONES),
    "results/tables/prompts.csv",
    "results/tables/evaluation.csv",
]


def tiny_config() -> dict:
    demo = toy_config()
    generator = {**demo["generators"]["tiny"], "steps": 2, "chunk_size": 2, "batch_size": 2}
    clone = {"generator": "tiny", "images_per_class": 2, "heldout_per_class": 0, "shard_size": 8}
    return {
        "seed": 0,
        "class_sets": {name: {"sheet": f"config/sheets/rerun-{name}.tsv"} for name in CLONES},
        "recipes": {"c_dc": {"family": "c, d_c"}, "c_hc": {"family": "c, h_c"}},
        "pipelines": demo["pipelines"],
        "generators": {"tiny": generator},
        "clones": {
            "big": {"class_set": "big", "recipe": "c_dc", **clone},
            "small": {"class_set": "small", "recipe": "c_dc", **clone},
            "other": {"class_set": "other", "recipe": "c_hc", **clone},
        },
        "trainings": {
            "demo": {**demo["trainings"]["demo"], "batch_size": 2, "max_steps": 1, "local_crops": 0, "workers": 0}
        },
        "evalsets": {"real": {"path": "real-val", "description": "a few real JPEGs in ImageFolder layout"}},
        "runs": {"big": {"clone": "big", "training": "demo", "evaluate": ["real"]}},
    }


def write_sheet(workdir: Path, name: str, rows: list[tuple[str, str]]) -> None:
    lines = ["wnid\tname", *(f"{wnid}\t{label}" for wnid, label in rows)]
    (workdir / f"config/sheets/rerun-{name}.tsv").write_text("\n".join(lines) + "\n")


def make_workdir(dest: Path) -> Path:
    workdir = copy_workflow(dest, tiny_config())
    if not (workdir / "envs").exists():  # rules name conda envs; Snakemake records them in its metadata
        shutil.copytree(REPO / "envs", workdir / "envs")
    for name, wnids in (("big", BIG), ("small", SMALL), ("other", OTHER)):
        write_sheet(workdir, name, [(w, "") for w in wnids])
    for wnid in BIG:  # an ImageFolder evaluation set, as ImageNet val is laid out
        (workdir / "real-val" / wnid).mkdir(parents=True)
        Image.new("RGB", (32, 32), (200, 30, 30)).save(workdir / "real-val" / wnid / "a.jpg")
    return workdir


def dry_run(workdir: Path, *targets: str) -> tuple[Counter, dict[str, set[str]]]:
    """Jobs a dry run schedules: counts by rule, and the first output of each job by rule."""
    proc = run_snakemake(workdir, "--dry-run", *(targets or TARGETS))
    text = proc.stdout + proc.stderr
    outputs: dict[str, set[str]] = {}
    for rule, block in re.findall(r"^(?:local)?rule (\w+):\n((?:    .*\n)+)", text, re.M):
        match = re.search(r"^    output: ([^,\n]+)", block, re.M)
        outputs.setdefault(rule, set()).add(match.group(1) if match else "")
    return parse_job_stats(text), outputs


def snapshot(workdir: Path) -> dict[str, tuple[str, int]]:
    """sha256 and mtime of every prompt file and generated chunk."""
    files = [*(workdir / "results/prompts").rglob("*.json"), *(workdir / "results/generated").rglob("*.*")]
    return {
        str(p.relative_to(workdir)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns) for p in files
    }


def load_config(workdir: Path) -> dict:
    return yaml.safe_load((workdir / "config.yaml").read_text())


def plan_of(workdir: Path):
    """The plan of the workdir's config (its sheets are paths relative to the workdir)."""
    config = load_config(workdir)
    validate(config, str(workdir / "schemas/config.schema.yaml"))  # fills the defaults, as the Snakefile does
    cwd = os.getcwd()
    os.chdir(workdir)
    try:
        return build_plan(config, check_wnids=False)
    finally:
        os.chdir(cwd)


def chunk(workdir: Path, clone: str, ckey: str, start: int = 0, stop: int = 2) -> str:
    """Path of a train chunk tar as the plan of the workdir's config names it."""
    c = plan_of(workdir).clones[clone]
    return paths.chunk(c.generator_key, c.recipe_key, "train", ckey, start, stop)


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """The small run, completed: resources, prompts, generated chunks, packed clones, prompt table."""
    workdir = make_workdir(tmp_path_factory.mktemp("rerun") / "base")
    run_snakemake(workdir, *TARGETS)
    return workdir


@pytest.fixture
def work(base, tmp_path) -> Path:
    """A copy of the completed run (copytree keeps mtimes and Snakemake's metadata)."""
    return Path(shutil.copytree(base, tmp_path / "wf", symlinks=True))


def edit_config(workdir: Path, change) -> dict:
    config = copy.deepcopy(load_config(workdir))
    change(config)
    write_config(workdir, config)
    return config


def generated(outputs: dict[str, set[str]]) -> set[str]:
    return outputs.get("generate", set())


# ---- case 7 first: it is about planning the run from scratch ------------------------------------------
def test_subset_clone_shares_the_generated_files(tmp_path):
    workdir = make_workdir(tmp_path / "fresh")
    jobs, outputs = dry_run(workdir)
    assert jobs["generate"] == len(BIG) + len(OTHER)  # the shared class is generated once, not twice
    assert jobs["prompts"] == len(BIG) + len(OTHER)
    plan = plan_of(workdir)
    assert set(plan.clone_chunks("small", "train")) <= set(plan.clone_chunks("big", "train"))
    assert set(plan.clone_prompts("small")) <= set(plan.clone_prompts("big"))
    assert generated(outputs) == {*plan.clone_chunks("big", "train"), *plan.clone_chunks("other", "train")}


def test_completed_run_schedules_nothing(work):
    assert dry_run(work)[0] == {}


# ---- 1. a name override in the sheet ----------------------------------------------------------------
def test_name_override_regenerates_exactly_that_class(work):
    before = snapshot(work)
    write_sheet(work, "big", [(BIG[0], "American robin"), (BIG[1], "")])
    plan = plan_of(work)
    key = plan.sheets["big"][0].key
    assert key != BIG[0]
    jobs, outputs = dry_run(work)
    assert jobs["prompts"] == 1 and outputs["prompts"] == {
        paths.PROMPTS.format(recipe_key=plan.clones["big"].recipe_key, ckey=key)
    }
    assert generated(outputs) == {chunk(work, "big", key)}
    assert jobs["pack"] == 1 and outputs["pack"] == {"results/clones/big/train"}
    # the completed run trained and evaluated `big`: the change retrains and re-evaluates it, once
    assert all(jobs[rule] == 1 for rule in ("train", "evaluate", "tables", "prompt_summary"))
    assert outputs["train"] == {"results/runs/big/checkpoint.pt"}
    assert snapshot(work) == before  # a dry run touches nothing


# ---- 2. one recipe used by one clone ---------------------------------------------------------------
def test_changing_a_recipe_regenerates_only_its_clones_classes(work):
    edit_config(work, lambda c: c["recipes"]["c_hc"].update(hypernym="all_lemmas"))
    jobs, outputs = dry_run(work)
    assert jobs["prompts"] == len(OTHER) and jobs["generate"] == len(OTHER)
    assert generated(outputs) == {chunk(work, "other", wnid) for wnid in OTHER}
    assert outputs["pack"] == {"results/clones/other/train"}


# ---- 3. more images per class ----------------------------------------------------------------------
def test_raising_images_per_class_generates_only_the_new_chunks(work):
    before = snapshot(work)
    edit_config(work, lambda c: c["clones"]["other"].update(images_per_class=4))
    jobs, outputs = dry_run(work)
    assert jobs["prompts"] == 0  # the prompt file does not depend on the number of images
    assert generated(outputs) == {chunk(work, "other", OTHER[0], 2, 4)}
    run_snakemake(work, *TARGETS)
    after = snapshot(work)
    assert {k: v for k, v in after.items() if k in before} == before  # bytes and mtimes kept
    assert set(after) - set(before) == {
        chunk(work, "other", OTHER[0], 2, 4),
        chunk(work, "other", OTHER[0], 2, 4).replace(".tar", ".json"),
    }


# ---- 4. a class added to a sheet ---------------------------------------------------------------------
def test_adding_a_class_prompts_and_generates_only_that_class(work):
    write_sheet(work, "other", [(w, "") for w in [*OTHER, NEW_CLASS]])
    jobs, outputs = dry_run(work)
    plan = plan_of(work)
    assert outputs["prompts"] == {paths.PROMPTS.format(recipe_key=plan.clones["other"].recipe_key, ckey=NEW_CLASS)}
    assert generated(outputs) == {chunk(work, "other", NEW_CLASS)}
    assert jobs["pack"] == 1


# ---- 5. a second generator setting -----------------------------------------------------------------
def test_a_new_generator_setting_is_written_beside_the_old(work):
    before = snapshot(work)

    def add_guidance_75(config):
        config["generators"]["tiny-g75"] = {**config["generators"]["tiny"], "guidance_scale": 7.5}
        config["clones"]["other-g75"] = {**config["clones"]["other"], "generator": "tiny-g75"}

    edit_config(work, add_guidance_75)
    targets = [*TARGETS, "results/clones/other-g75/train.json"]
    jobs, outputs = dry_run(work, *targets)
    assert jobs["prompts"] == 0  # same recipe and class: the prompt file is shared
    new = chunk(work, "other-g75", OTHER[0])
    assert generated(outputs) == {new} and new.split("/")[2].startswith("tiny-g75-")
    run_snakemake(work, *targets)
    after = snapshot(work)
    assert {k: v for k, v in after.items() if k in before} == before
    assert set(after) - set(before) == {new, new.replace(".tar", ".json")}


# ---- 6. code edits that do not change outputs; explicit regeneration ---------------------------------
def test_a_comment_in_the_scripts_regenerates_nothing(work):
    for script in (
        "workflow_scripts/generate.py",
        "workflow_scripts/prompts.py",
        "imagenet_sd/prompts/prompts.py",
    ):
        with open(work / script, "a") as f:
            f.write("\n# a comment that changes no output\n")
    assert dry_run(work)[0] == {}


def test_output_version_regenerates_beside_and_forcerun_in_place(work):
    edit_config(work, lambda c: c["generators"]["tiny"].update(output_version=2))
    jobs, outputs = dry_run(work)
    assert jobs["prompts"] == 0 and jobs["generate"] == len(BIG) + len(OTHER)
    assert all(path not in snapshot(work) for path in generated(outputs))  # new paths, old files kept
    edit_config(work, lambda c: c["generators"]["tiny"].update(output_version=1))
    jobs, outputs = dry_run(work, *TARGETS, "--forcerun", "generate")
    assert jobs["generate"] == len(BIG) + len(OTHER) and jobs["prompts"] == 0
