"""The workflow tier of test_cards: its tests that run the real Snakemake (the unit tests are in
tests/unit/test_cards.py)."""

import copy

from conftest import copy_workflow, planned_jobs, toy_config, write_config


def test_every_clone_gets_a_card(tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    config = toy_config()
    assert planned_jobs(workdir)["dataset_card"] == len(config["clones"])
    config = copy.deepcopy(config)
    del config["quality"]  # no quality table: the cards do not wait for one
    write_config(workdir, config)
    assert planned_jobs(workdir)["dataset_card"] == len(config["clones"])
