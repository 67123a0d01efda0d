"""Transfer: splits, the hyper-parameter search, both probes on problems with a known answer, dataset
indexes of every layout, tables, and what the workflow schedules when a dataset or a model is added."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import REPO, load_script, toy_config
from PIL import Image
from snakemake.utils import validate

from imagenet_sd.config import schema
from imagenet_sd.data.transfer_sets import build_index, seeded_split
from imagenet_sd.evaluate.features import write_features
from imagenet_sd.evaluate.probes import linear_grid, log_grid, run_probe, search_1d
from imagenet_sd.planning import models as MP
from imagenet_sd.planning import transfer as TP
from imagenet_sd.planning.clones import build_plan
from imagenet_sd.report.transfer_tables import log_odds, write_transfer_tables

torch.set_num_threads(1)
DEFAULT_SEEDS = schema()["properties"]["transfer"]["properties"]["seeds"]["default"]
LOGISTIC = {"c_min": 1e-5, "c_max": 1e6, "trials": 8, "max_iter": 500}
LINEAR = {
    "lr_min": 0.1,
    "lr_max": 100.0,
    "wd_min": 1e-12,
    "wd_max": 1e-4,
    "trials": 4,
    "epochs": 30,
    "batch_size": 64,
    "momentum": 0.9,
}


def linear_problem(n_train=600, n_test=300, dim=20, classes=4, seed=0):
    """Gaussian clusters around random class means: linearly separable up to a little noise."""
    rng = np.random.default_rng(seed)
    means = rng.normal(0, 3, (classes, dim))

    def draw(n):
        y = rng.integers(0, classes, n)
        return (means[y] + rng.normal(0, 1, (n, dim))).astype(np.float16), y.astype(np.int64)

    return (*draw(n_train), *draw(n_test))


def test_seeded_split_takes_the_fraction_of_every_class_and_repeats():
    labels = np.repeat(np.arange(5), [10, 20, 5, 2, 1])
    mask = seeded_split(labels, 0.2, seed=3)
    assert [int(mask[labels == c].sum()) for c in range(5)] == [2, 4, 1, 1, 0]
    assert np.array_equal(mask, seeded_split(labels, 0.2, seed=3))
    assert not np.array_equal(mask, seeded_split(labels, 0.2, seed=4))


def test_search_finds_the_peak_of_a_known_curve_with_the_given_budget():
    calls = []

    def score(c):  # validation accuracy peaking at C = 10^2.3
        calls.append(c)
        return -abs(np.log10(c) - 2.3)

    best, history = search_1d(score, 1e-5, 1e6, trials=30)
    assert len(calls) == len(history) <= 30
    assert abs(np.log10(best) - 2.3) < 0.1
    assert log_grid(1e-5, 1e6, 30)[0] == pytest.approx(1e-5) and log_grid(1e-5, 1e6, 30)[-1] == pytest.approx(1e6)
    assert len(linear_grid({**LINEAR, "trials": 30})) == 30


@pytest.mark.parametrize("kind,settings", [("logistic", LOGISTIC), ("linear", LINEAR)])
def test_the_probe_recovers_a_known_linear_problem(kind, settings):
    x, y, tx, ty = linear_problem()
    r = run_probe(x, y, tx, ty, kind=kind, settings=settings, val_fraction=0.2, seed=0, n_classes=4, device="cpu")
    assert r["top1"] > 95 and r["mean_per_class"] > 95 and r["chance_top1"] == 25
    assert r["n_train"] == 600 and r["n_test"] == 300 and r["n_val"] == len(r["val_indices"])
    assert abs(r["n_val"] - 120) <= 4  # 20% of each class


def test_random_labels_stay_at_chance():
    x, y, tx, ty = linear_problem()
    rng = np.random.default_rng(1)
    r = run_probe(
        x,
        rng.permutation(y),
        tx,
        rng.permutation(ty),
        kind="logistic",
        settings=LOGISTIC,
        val_fraction=0.2,
        seed=0,
        n_classes=4,
    )
    assert r["top1"] < 40


@pytest.mark.parametrize("kind,settings", [("logistic", LOGISTIC), ("linear", LINEAR)])
def test_the_chosen_hyper_parameter_does_not_move_when_test_labels_are_scrambled(kind, settings):
    x, y, tx, ty = linear_problem(seed=2)
    x = x + np.random.default_rng(5).normal(0, 3, x.shape).astype(np.float16)  # noisy: the choice matters
    common = dict(kind=kind, settings=settings, val_fraction=0.2, seed=0, n_classes=4, device="cpu")
    honest = run_probe(x, y, tx, ty, **common)
    scrambled = run_probe(x, y, tx, np.random.default_rng(9).permutation(ty), **common)
    assert scrambled["chosen"] == honest["chosen"] and scrambled["search"] == honest["search"]
    assert scrambled["top1"] < honest["top1"]  # the test labels did reach the final score
    moved = run_probe(x, np.random.default_rng(9).permutation(y), tx, ty, **common)
    assert moved["search"] != honest["search"]  # training labels do reach the search


def test_a_set_with_no_official_split_draws_its_test_split_per_seed_from_all_its_images():
    x, y, tx, ty = linear_problem()
    common = dict(kind="logistic", settings=LOGISTIC, val_fraction=0.2, n_classes=4, device="cpu")
    drawn = [run_probe(x, y, tx, ty, seed=seed, test_fraction=0.3, **common) for seed in (0, 1)]
    pooled = np.concatenate([y, ty])  # the rows of both prepared lists, whose features exist already
    for r in drawn:
        assert r["n_train"] + r["n_test"] == len(pooled) and r["test_fraction"] == 0.3
        test_labels = pooled[r["test_indices"]]
        assert all(abs((test_labels == c).sum() - 0.3 * (pooled == c).sum()) <= 0.5 for c in range(4))
    assert drawn[0]["test_indices"] != drawn[1]["test_indices"]  # each seed its own test split
    assert run_probe(x, y, tx, ty, seed=0, test_fraction=0.3, **common)["test_indices"] == drawn[0]["test_indices"]
    official = run_probe(x, y, tx, ty, seed=1, **common)
    assert official["n_test"] == len(ty) and official["test_indices"] is None


def probed_demo_config(monkeypatch) -> dict:
    monkeypatch.chdir(REPO)  # the demo's class sheets
    config = toy_config()
    validate(config, str(REPO / "schemas/config.schema.yaml"))
    return config


def test_the_probe_runs_for_each_split_seed_and_the_table_gives_their_mean_and_spread(tmp_path, monkeypatch):
    config = probed_demo_config(monkeypatch)
    models = MP.build_models(config, build_plan(config, check_wnids=False))
    seeds = TP.probe_seeds(config, "digits")
    assert seeds == DEFAULT_SEEDS == [0, 1, 2]  # three by default, which the demo keeps
    outputs = [str(tmp_path / TP.probe_path(config, "demo", "digits", seed)) for seed in seeds]
    assert [str(tmp_path / o) for o in TP.probe_outputs(config, models)] == outputs
    x, y, tx, ty = linear_problem(seed=3)
    noise = np.random.default_rng(4).normal(0, 4, (len(y) + len(ty), x.shape[1])).astype(np.float16)
    for split, features, labels in (("train", x + noise[: len(y)], y), ("test", tx + noise[len(y) :], ty)):
        write_features(tmp_path / f"{split}.npz", features, labels, ["a", "b", "c", "d"])
    for seed, output in zip(seeds, outputs):
        load_script("probe").main(
            **{split: tmp_path / f"{split}.npz" for split in ("train", "test")},
            output=output,
            kind=TP.probe_kind(config, "digits"),
            settings=LOGISTIC,
            val_fraction=0.2,
            seed=seed,
            test_fraction=TP.drawn_test_fraction(config, "digits"),
        )
    results = [json.loads(Path(o).read_text()) for o in outputs]
    top1 = [r["top1"] for r in results]
    assert len({tuple(r["test_indices"]) for r in results}) == 3 and statistics.stdev(top1) > 0
    out = {k: str(tmp_path / f"t.{k}") for k in ("csv", "markdown", "png")}
    write_transfer_tables(probe_files=outputs, models={"demo": {"synthetic": True}}, datasets={"digits": {}}, **out)
    table = pd.read_csv(out["csv"])
    assert list(table.seed) == seeds and list(table.top1) == pytest.approx(top1) and set(table.test_fraction) == {0.3}
    md = Path(out["markdown"]).read_text()
    mean = sum(top1) / len(top1)
    assert f"| demo | synthetic only | {mean:.1f} ± {statistics.stdev(top1):.2f} | {mean:.1f} |" in md
    assert "3 seed(s): 0, 1, 2; test split drawn per seed: 30% of each class" in md


def write_images(folder, per_class):
    for cls, n in per_class.items():
        (folder / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.new("RGB", (20, 20), (40 * i % 256, 90, 10)).save(folder / cls / f"{i}.jpg")


def test_indexes_of_imagefolder_lists_sun397_and_inat_layouts(tmp_path):
    write_images(tmp_path / "if/train", {"b": 2, "a": 1})
    index = build_index(str(tmp_path / "if"), "imagefolder", "train")
    assert index["classes"] == ["a", "b"] and index["samples"] == [
        ["train/a/0.jpg", 0],
        ["train/b/0.jpg", 1],
        ["train/b/1.jpg", 1],
    ]
    (tmp_path / "ls").mkdir()
    (tmp_path / "ls/test.tsv").write_text("x/1.jpg\tdog\nx/2.jpg\tcat\n")
    assert build_index(str(tmp_path / "ls"), "lists", "test")["samples"] == [["x/1.jpg", 1], ["x/2.jpg", 0]]
    (tmp_path / "sun/Partitions").mkdir(parents=True)
    (tmp_path / "sun/Partitions/Testing_01.txt").write_text("/a/abbey/sun_1.jpg\n/b/bar/sun_2.jpg\n")
    sun = build_index(str(tmp_path / "sun"), "sun397", "test")
    assert sun["classes"] == ["a/abbey", "b/bar"] and sun["samples"][0] == ["SUN397/a/abbey/sun_1.jpg", 0]
    (tmp_path / "inat").mkdir()
    (tmp_path / "inat/val2018.json").write_text(
        json.dumps(
            {
                "images": [{"id": 7, "file_name": "val/3/x.jpg"}],
                "annotations": [{"image_id": 7, "category_id": 3}],
                "categories": [{"id": 3}, {"id": 1}],
            }
        )
    )
    inat = build_index(str(tmp_path / "inat"), "inat", "test")
    assert inat["classes"] == ["1", "3"] and inat["samples"] == [["val/3/x.jpg", 1]]


def test_a_missing_folder_or_split_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"dataset folder not found: .*nope.*docs/transfer.md"):
        build_index(str(tmp_path / "nope"), "imagefolder", "train")
    (tmp_path / "half/train").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"split 'test' expected at .*half/test"):
        build_index(str(tmp_path / "half"), "imagefolder", "test")


def test_transfer_tables_mean_log_odds_groups_and_training_data(tmp_path):
    files = []
    for model, dataset, seed, top1 in [
        ("syn", "a", 0, 50.0),
        ("syn", "a", 1, 70.0),
        ("syn", "b", 0, 90.0),
        ("syn", "in1k", 0, 40.0),
        ("real", "a", 0, 80.0),
    ]:
        path = tmp_path / f"results/models/{model}/transfer/{dataset}/logistic-00000000/seed{seed}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            json.dumps(
                {
                    "kind": "logistic",
                    "seed": seed,
                    "n_train": 10,
                    "n_val": 2,
                    "n_test": 5,
                    "n_classes": 4,
                    "chosen": {"C": 1.0},
                    "val_top1": 1.0,
                    "top1": top1,
                    "mean_per_class": top1,
                    "chance_top1": 25.0,
                }
            )
        )
        files.append(str(path))
    models = {"syn": {"synthetic": True}, "real": {"synthetic": False}}
    datasets = {"a": {"group": "small"}, "b": {"group": "small"}, "in1k": {"summary": False}}
    out = {k: str(tmp_path / f"t.{k}") for k in ("csv", "markdown", "png")}
    write_transfer_tables(probe_files=files, models=models, datasets=datasets, **out)
    table = pd.read_csv(out["csv"])
    assert len(table) == 5 and set(table.training_data) == {"synthetic only", "real images"}
    md = Path(out["markdown"]).read_text()
    # syn: a = mean(50, 70) = 60 (standard deviation 14.14), b = 90; ImageNet-1K (40) is not counted: mean 75,
    # log-odds mean of 60 and 90
    expected = (log_odds(60) + log_odds(90)) / 2
    assert f"| syn | synthetic only | 60.0 ± 14.14 | 90.0 | 40.0 | 75.0 | {expected:.2f} | 75.0 |" in md
    assert "| real | real images | 80.0 |  |  | 80.0 |" in md
    assert Path(out["png"]).read_bytes()[:4] == b"\x89PNG"
