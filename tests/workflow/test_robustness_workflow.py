"""Robustness and the real-data clone in the real workflow: what a change schedules, and bad real folders."""

import copy
import json

import pandas as pd
import pytest
from conftest import copy_workflow, demo_config, planned_jobs, run_snakemake, toy_config, write_config
from test_workflow import bad_config

from imagenet_sd.data.realdata import DIGIT_WNIDS


def with_robustness(mutate, base=toy_config) -> dict:
    config = copy.deepcopy(base())
    mutate(config["robustness"])
    return config


def test_a_fresh_demo_plans_one_attack_job_per_model_set_attack_and_epsilon(tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    jobs = planned_jobs(workdir)
    assert jobs["attack"] == 2 * 2 * 1  # (demo, digits) x (fgsm, pgd) x (1/255)
    assert jobs["pack"] == 2 and jobs["train"] == 2 and jobs["sklearn_digits"] == 1
    assert jobs["references"] == 1  # published numbers beside the evaluations and the attacks
    write_config(workdir, with_robustness(lambda r: r.update(epsilons=[0.5, 1, 2])), "more.yaml")
    assert planned_jobs(workdir, "--configfile", "more.yaml")["attack"] == 2 * 2 * 3


@pytest.mark.e2e
def test_adding_an_attack_or_an_epsilon_schedules_only_the_new_attack_jobs(demo_run):
    def new_attack_and_epsilon(r):
        r["attacks"]["pgd5"] = {"method": "pgd", "steps": 5}
        r["epsilons"] = [1, 2]

    write_config(demo_run, with_robustness(new_attack_and_epsilon, demo_config), "more-attacks.yaml")
    jobs = planned_jobs(demo_run, "--configfile", "more-attacks.yaml")
    # new: pgd5 at eps 1 and 2, fgsm and pgd at eps 2, for each of the 2 models; nothing retrains; the
    # robustness table, the published numbers beside ours, and the robustness report page and plot follow
    report = {"report_table": 1, "report_figure": 1}
    assert jobs == {"attack": 2 * 4, "robustness_tables": 1, "references": 1, **report, "all": 1}
    write_config(demo_run, with_robustness(lambda r: r["attacks"]["pgd"].update(steps=10), demo_config), "pgd10.yaml")
    expected = {"attack": 2, "robustness_tables": 1, "references": 1, **report, "all": 1}
    assert planned_jobs(demo_run, "--configfile", "pgd10.yaml") == expected


@pytest.mark.e2e
def test_demo_attacks_calibration_and_the_real_row(demo_run):
    table = pd.read_csv(demo_run / "results/tables/robustness.csv")
    assert set(table.model) == {"digits-sd", "digits-real"}
    assert dict(zip(table.model, table.train_data)) == {"digits-sd": "synthetic", "digits-real": "real"}
    adversarial = table[table.kind == "adversarial"]
    assert sorted(set(adversarial.perturbation)) == ["fgsm", "pgd"] and set(adversarial.strength) == {"1/255"}
    subset = table[table.kind == "clean_subset"]  # each attacked (model, set)'s own clean row
    assert set(zip(subset.model, subset["set"])) == set(zip(adversarial.model, adversarial["set"]))
    assert set(subset.n_images) == {100}
    assert table.ece.between(0, 1).all() and (table.nll > 0).all()
    for model, evalset in (("digits-sd", "digits-heldout"), ("digits-real", "digits-heldout")):
        pgd = json.loads((demo_run / f"results/models/{model}/attack/{evalset}/pgd/eps1.json").read_text())
        fgsm = json.loads((demo_run / f"results/models/{model}/attack/{evalset}/fgsm/eps1.json").read_text())
        assert pgd["clean"]["correct_top1"] == fgsm["clean"]["correct_top1"]  # the same fixed subset
        assert pgd["subset"]["n_images"] == 100
    assert (demo_run / "results/tables/robustness.png").stat().st_size > 1000
    assert "digits-real (real)" in (demo_run / "results/tables/robustness.md").read_text()
    index = json.loads((demo_run / "results/clones/digits-real/train.json").read_text())
    assert index["source"]["kind"] == "real" and index["count"] == 1797 - 10 * 54  # all but the held-out


def bad_real_folder(tmp_path, make_folder) -> str:
    """Output of a failing dry run of the demo with the digits clone read from the folder `make_folder` makes."""
    folder = tmp_path / "real"
    make_folder(folder)
    return bad_config(tmp_path, lambda config: config["clones"]["digits"].update(path=str(folder)))


def test_a_sheet_class_missing_from_a_real_train_set_is_named_before_any_job(tmp_path):
    def folder_without_nine(folder):
        for wnid in DIGIT_WNIDS[:-1]:
            (folder / wnid).mkdir(parents=True)

    out = bad_real_folder(tmp_path, folder_without_nine)
    assert "clones.digits.path" in out and DIGIT_WNIDS[-1] in out and DIGIT_WNIDS[0] + "," not in out


def test_a_wrong_real_folder_layout_is_named_before_any_job(tmp_path):
    def imagenet_root(folder):
        (folder / "train").mkdir(parents=True)
        (folder / "val").mkdir()

    out = bad_real_folder(tmp_path, imagenet_root)
    assert "clones.digits.path" in out and "one sub-folder per wnid" in out and "train, val" in out


def test_attacking_a_corruption_set_is_refused(tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    config = copy.deepcopy(toy_config())
    config["evalsets"]["c"] = {"path": str(tmp_path / "c"), "layout": "corruptions"}
    config["robustness"]["evalsets"].append("c")
    write_config(workdir, config)
    proc = run_snakemake(workdir, "--dry-run", check=False)
    assert proc.returncode != 0 and "robustness.evalsets: 'c' is a corruption set" in proc.stdout + proc.stderr
