"""Result tables from evaluation JSON files."""

import json

import pandas as pd

from imagenet_sd.tables import main


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
    main(eval_files=files, runs=runs, evalsets=evalsets, csv=str(tmp_path / "t.csv"), markdown=str(tmp_path / "t.md"))
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
    main(
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
    table = main(
        eval_files=[str(path)],
        runs=runs,
        evalsets={"val": {"path": "/data/val"}},
        csv=str(tmp_path / "t.csv"),
        markdown=str(tmp_path / "t.md"),
    )
    assert table.run.tolist() == ["a"] and table.evalset.tolist() == ["val"]
