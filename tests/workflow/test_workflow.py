"""Workflow tests: the real Snakemake on copies of the repository (lint, dry-runs, bad configs, the demo)."""

from __future__ import annotations

import copy
import time

import pandas as pd
import pytest
import yaml
from conftest import REPO, copy_workflow, demo_config, planned_jobs, run_snakemake, toy_config, write_config

from imagenet_sd.config import schema

SHIPPED_CONFIGS = ["config.yaml", *sorted(str(p.relative_to(REPO)) for p in (REPO / "config").glob("*.yaml"))]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """The repository as shipped: config.yaml is the demo (its plan is one of the shipped configs checked)."""
    return copy_workflow(tmp_path_factory.mktemp("wf"), demo_config())


def test_lint_is_clean(workdir):
    proc = run_snakemake(workdir, "--lint", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Lints for" not in proc.stdout + proc.stderr


@pytest.mark.parametrize("configfile", SHIPPED_CONFIGS)
def test_every_shipped_config_plans_its_whole_dag(workdir, configfile):
    config = yaml.safe_load((REPO / configfile).read_text())
    jobs = planned_jobs(workdir, "--configfile", configfile)
    rows = {name: (REPO / cs["sheet"]).read_text().splitlines()[1:] for name, cs in config["class_sets"].items()}
    clones, runs, models = config.get("clones", {}), config.get("runs", {}), config.get("models", {})
    synthetic = [c for c in clones.values() if "path" not in c]  # real clones pack a folder
    # Clones with the same generator and recipe share their classes' prompt files and chunks: a larger clone
    # adds chunks to a smaller one's, so each (generator, recipe, class, split) counts its largest clone.
    chunks: dict = {}
    for clone in synthetic:
        size = config["generators"][clone["generator"]]["chunk_size"]
        for row in rows[clone["class_set"]]:
            for split, n in (("train", clone["images_per_class"]), ("heldout", clone.get("heldout_per_class", 0))):
                key = (clone["generator"], clone["recipe"], row, split)
                chunks[key] = max(chunks.get(key, 0), -(-n // size))
    assert jobs["generate"] == sum(chunks.values())
    assert jobs["prompts"] == len({(c["recipe"], row) for c in synthetic for row in rows[c["class_set"]]})
    assert jobs["pack"] == len(clones)
    assert jobs["train"] == len(runs)
    assert jobs["evaluate"] == sum(len(r.get("evaluate", [])) for r in [*runs.values(), *models.values()])
    assert jobs["tables"] == 1 and jobs["references"] == 1 and jobs["transfer_tables"] == 1
    sets = config.get("transfer_sets", {})
    probed = [
        (m, s)
        for m, spec in [*runs.items(), *models.items()]
        for s in (sets if spec.get("transfer") == "all" else spec.get("transfer", []))
    ]
    default_seeds = config.get("transfer", {}).get(
        "seeds", schema()["properties"]["transfer"]["properties"]["seeds"]["default"]
    )
    # one probe per split seed of the set (3 by default), all on the same two features files
    assert jobs["probe"] + jobs["probe_linear"] == sum(len(sets[s].get("seeds") or default_seeds) for _, s in probed)
    analysed = [
        (m, ev)
        for m, spec in [*runs.items(), *models.items()]
        for ev in spec.get("evaluate", [])
        if ev in config.get("representation", {}).get("evalsets", [])
    ]
    # train + test split of each probed (model, set); the test split of each analysed (model, evaluation set)
    assert jobs["features"] == 2 * len(probed) + len(analysed)
    assert jobs["analyze"] == len(analysed)


def test_imagenet1k_plan_covers_every_class_and_chunk(workdir):
    started = time.perf_counter()
    jobs = planned_jobs(workdir, "--configfile", "config/imagenet1k_sd.yaml")
    elapsed = time.perf_counter() - started
    assert jobs["prompts"] == 1000
    assert jobs["generate"] == 1000  # 1,300 images per class in one chunk of 1,300
    print(f"IN-1K dry run: {sum(jobs.values())} jobs in {elapsed:.1f} s: {dict(jobs)}")


def bad_config(tmp_path, mutate) -> str:
    """Output of a dry run of the demo config after `mutate(config)`; asserts it fails before any job."""
    workdir = copy_workflow(tmp_path / "wf")
    config = copy.deepcopy(toy_config())
    mutate(config)
    write_config(workdir, config)
    proc = run_snakemake(workdir, "--dry-run", check=False)
    assert proc.returncode != 0, proc.stdout
    assert not (workdir / "results").exists()
    return proc.stdout + proc.stderr


def test_unknown_top_level_key_is_named(tmp_path):
    out = bad_config(tmp_path, lambda c: c.update(sede=1))
    assert "sede" in out and "was unexpected" in out


def test_unknown_generator_key_is_named(tmp_path):
    out = bad_config(tmp_path, lambda c: c["generators"]["tiny"].update(guidance=3.0))
    assert "guidance" in out and "was unexpected" in out


def test_unknown_reference_is_named(tmp_path):
    out = bad_config(tmp_path, lambda c: c["clones"]["demo"].update(recipe="c_hd"))
    assert "clones.demo.recipe" in out and "c_hd" in out


def test_missing_sheet_is_named(tmp_path):
    out = bad_config(tmp_path, lambda c: c["class_sets"]["demo"].update(sheet="config/sheets/nope.tsv"))
    assert "config/sheets/nope.tsv" in out


def test_unknown_wnid_is_named(tmp_path):
    def mutate(config):
        sheet = tmp_path / "bad.tsv"
        sheet.write_text("wnid\nn01558993\nn01558994\n")
        config["class_sets"]["demo"]["sheet"] = str(sheet)

    out = bad_config(tmp_path, mutate)
    assert "n01558994" in out and "n01558993," not in out


@pytest.mark.e2e
def test_demo_runs_to_the_end_and_a_rerun_schedules_nothing(demo_run):
    table = (demo_run / "results/tables/evaluation.csv").read_text().splitlines()
    assert table[0].startswith("run,clone,training,evalset")
    assert len(table) == 3  # two runs (synthetic digits, real digits) x the real held-out digits
    assert (demo_run / "results/tables/evaluation.md").read_text().count("| digits-sd |") == 1
    prompts = pd.read_csv(demo_run / "results/tables/prompts.csv")
    assert set(prompts.clone) == {"demo", "digits-sd"}  # the ImageNet-class path is shown beside the digits
    assert "clothes iron" in " ".join(prompts.example_1)  # the sheet's name override reached the prompts
    assert (demo_run / "results/clones/demo/card.md").exists()
    assert planned_jobs(demo_run) == {}
