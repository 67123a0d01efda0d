"""Result tables from evaluation JSON files."""

import json

import pandas as pd
import yaml
from conftest import REPO

from imagenet_sd.report.evaluation_tables import run_budgets, training_budget, write_evaluation_tables
from imagenet_sd.report.report import TABLES, caption_text


def write_eval(root, run, evalset, top1, top5):
    path = root / "results/runs" / run / "eval" / f"{evalset}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {
                "run": run,
                "evalset": {"name": evalset},
                "top1": top1,
                "top5": top5,
                "n_images": 50,
                "n_classes_scored": 10,
            }
        )
    )
    return str(path)


def test_long_csv_and_markdown_pivot(tmp_path):
    runs = {
        "a": {"clone": "c1", "training": "t", "synthetic": True},
        "b": {"clone": "c2", "training": "t", "synthetic": True},
    }
    evalsets = {"val": {"path": "/data/val", "description": "real"}, "held": {"clone": "c1"}}
    files = [
        write_eval(tmp_path, "b", "val", 25.0, 50.0),
        write_eval(tmp_path, "a", "val", 50.0, 75.0),
        write_eval(tmp_path, "a", "held", 12.5, 100.0),
    ]
    write_evaluation_tables(
        eval_files=files, runs=runs, evalsets=evalsets, csv=str(tmp_path / "t.csv"), markdown=str(tmp_path / "t.md")
    )
    table = pd.read_csv(tmp_path / "t.csv")
    assert list(table.run) == ["a", "a", "b"] and list(table.evalset) == ["held", "val", "val"]
    assert table.loc[(table.run == "b") & (table.evalset == "val"), "clone"].item() == "c2"
    assert list(table.synthetic) == [True, False, False]
    md = (tmp_path / "t.md").read_text()
    assert "| run | held | val |" in md
    assert "| a | 12.5 / 100.0 | 50.0 / 75.0 |" in md
    assert "| b |  | 25.0 / 50.0 |" in md
    assert "held-out synthetic images of clone `c1`" in md
    assert "| *chance* | *10.0 / 50.0* | *10.0 / 50.0* |" in md
    assert table.chance_top1.tolist() == [10.0, 10.0, 10.0]


def test_runs_on_real_clones_are_marked_real(tmp_path):
    runs = {
        "syn": {"clone": "c1", "training": "t", "synthetic": True},
        "ref": {"clone": "real", "training": "t", "synthetic": False},
    }
    evalsets = {"held": {"clone": "c1"}, "real-held": {"clone": "real"}}
    files = [write_eval(tmp_path, "syn", "held", 10.0, 50.0), write_eval(tmp_path, "ref", "real-held", 30.0, 60.0)]
    write_evaluation_tables(
        eval_files=files,
        runs=runs,
        evalsets=evalsets,
        csv=str(tmp_path / "t.csv"),
        markdown=str(tmp_path / "t.md"),
        real_clones=["real"],
    )
    table = pd.read_csv(tmp_path / "t.csv")
    assert dict(zip(table.run, table.train_data)) == {"ref": "real", "syn": "synthetic"}
    assert dict(zip(table.evalset, table.synthetic)) == {"real-held": False, "held": True}
    md = (tmp_path / "t.md").read_text()
    assert "| ref (real) |" in md and "held-out real images of the real clone `real`" in md


def test_names_come_from_the_json_not_the_path(tmp_path):
    runs = {"a": {"clone": "c1", "training": "t", "synthetic": True}}
    path = tmp_path / "somewhere" / "else.json"
    path.parent.mkdir()
    path.write_text(
        json.dumps(
            {"run": "a", "evalset": {"name": "val"}, "top1": 40.0, "top5": 80.0, "n_images": 5, "n_classes_scored": 10}
        )
    )
    table = write_evaluation_tables(
        eval_files=[str(path)],
        runs=runs,
        evalsets={"val": {"path": "/data/val"}},
        csv=str(tmp_path / "t.csv"),
        markdown=str(tmp_path / "t.md"),
    )
    assert table.run.tolist() == ["a"] and table.evalset.tolist() == ["val"]


def test_the_scaling_study_says_its_image_budget_is_fixed_not_its_epochs():
    config = yaml.safe_load((REPO / "config/scaling_in100.yaml").read_text())
    budget = training_budget(run_budgets(config))
    assert budget.startswith("Fixed image budget, not fixed epochs: every run sees 130,000 images per class")
    assert "rn50-50x: 2 epochs x 65,000 images per class" in budget
    caption = caption_text(REPO, TABLES["evaluation"], config)
    assert budget in caption
    # The same clones at a fixed number of epochs say so instead.
    for training in config["trainings"].values():
        training["epochs"] = 100
    assert training_budget(run_budgets(config)).startswith("Fixed epochs (100), not a fixed image budget")
    # Runs that differ in nothing, or a single run, need no sentence.
    assert training_budget({"a": run_budgets(config)["rn50-1x"]}) == ""


def test_the_evaluation_markdown_states_the_budget(tmp_path):
    runs = {"a": {"clone": "c1", "training": "t", "synthetic": True}}
    write_evaluation_tables(
        eval_files=[write_eval(tmp_path, "a", "val", 50.0, 80.0)],
        runs=runs,
        evalsets={"val": {"path": "/data/val"}},
        csv=str(tmp_path / "t.csv"),
        markdown=str(tmp_path / "t.md"),
        budget="Fixed image budget, not fixed epochs: every run sees 10 images per class.",
    )
    assert "(uniform guessing over the classes scored). Fixed image budget" in (tmp_path / "t.md").read_text()
