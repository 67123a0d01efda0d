"""The workflow tier of test_transfer: its tests that run the real Snakemake (the unit tests are in
tests/unit/test_transfer.py)."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
import torch
import yaml
from conftest import copy_workflow, planned_jobs, run_snakemake, toy_config, write_config
from test_transfer import DEFAULT_SEEDS, write_images  # noqa: F401 (fixtures among them)

from imagenet_sd.train.models import build_model


@pytest.mark.parametrize(
    "mutate,message",
    [
        (lambda c: c["runs"]["demo"].update(transfer=["cars"]), "runs.demo.transfer: unknown transfer set 'cars'"),
        (
            lambda c: c["transfer_sets"].update({"demo-heldout": {"source": "digits"}}),
            "transfer_sets.demo-heldout and evalsets.demo-heldout share a name",
        ),
    ],
)
def test_an_unknown_dataset_is_named_before_any_job(tmp_path, mutate, message):
    workdir = copy_workflow(tmp_path / "wf")
    config = toy_config()
    mutate(config)
    write_config(workdir, config)
    proc = run_snakemake(workdir, "--dry-run", check=False)
    assert proc.returncode != 0 and message in proc.stdout + proc.stderr
    assert not (workdir / "results").exists()


def test_a_missing_folder_warns_when_planning_and_fails_on_the_login_node(tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    config = toy_config()
    config["transfer_sets"]["cars"] = {"path": "data/cars", "layout": "cars"}
    config["runs"]["demo"]["transfer"] = ["cars"]
    write_config(workdir, config)
    proc = run_snakemake(workdir, "-n", check=False)
    assert (
        proc.returncode == 0
        and "transfer_sets.cars.path: folder data/cars does not exist yet" in proc.stdout + proc.stderr
    )
    proc = run_snakemake(workdir, "results/datasets/cars/train.json", check=False)
    assert proc.returncode != 0
    assert "dataset folder not found: data/cars" in (workdir / "logs/index_dataset/cars/train.log").read_text()


@pytest.mark.e2e
def test_the_demo_probes_real_digits_above_chance(demo_run):
    table = pd.read_csv(demo_run / "results/tables/transfer.csv")
    assert set(table.dataset) == {"digits"} and set(table.training_data) == {"synthetic only"}
    assert list(table.seed) == DEFAULT_SEEDS and set(table.test_fraction) == {0.3}  # a test split per seed
    for row in table.itertuples():
        assert row.n_train + row.n_test == 1797 and row.n_classes == 10
        assert row.top1 > 2 * row.chance_top1  # real handwritten digits, far above the 10% of guessing
    md = (demo_run / "results/tables/transfer.md").read_text()
    assert f"{table.top1.mean():.1f} ± {table.top1.std():.2f}" in md


@pytest.mark.e2e
def test_adding_a_dataset_or_a_model_schedules_only_its_features_and_probes(demo_run, tmp_path):
    workdir = tmp_path / "wf"
    shutil.copytree(demo_run, workdir, symlinks=True)  # copy2 keeps mtimes: the copy is as complete as the run
    write_images(workdir / "few/train", {"x": 6, "y": 6})
    write_images(workdir / "few/test", {"x": 2, "y": 2})
    torch.save(build_model("resnet50", 6).state_dict(), workdir / "ext.pth")
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    config["transfer_sets"]["few"] = {"path": "few"}
    config["runs"]["digits-sd"]["transfer"] = ["digits", "few"]
    write_config(workdir, config)
    report = {"report_table": 1, "report_figure": 1}  # the transfer table's page and plot follow
    seeds = len(DEFAULT_SEEDS)  # one probe per split seed, on the same two features files
    expected = {"index_dataset": 2, "features": 2, "probe": seeds, "transfer_tables": 1, **report, "all": 1}
    assert planned_jobs(workdir) == expected
    config = yaml.safe_load((demo_run / "config.yaml").read_text())
    config["models"] = {"ext": {"checkpoint": "ext.pth", "class_set": "demo", "transfer": ["digits"]}}
    write_config(workdir, config)
    # the references table (a local job) lists every model, so a new model rewrites it too
    expected = {"check_model": 1, "features": 2, "probe": seeds, "transfer_tables": 1, "references": 1, **report}
    expected["all"] = 1
    assert planned_jobs(workdir) == expected
