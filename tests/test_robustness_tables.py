"""Robustness and representation tables from hand-made evaluation, attack and statistics JSON files."""

import json

import pandas as pd
import pytest

from imagenet_sd.robustness_tables import STATISTICS, main_representation, main_robustness, reference_model

KINDS = {"syn": "synthetic", "ref": "real"}


def write(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))
    return str(path)


def scores(top1, top5=90.0, ece=0.1, nll=1.0, n=10):
    return {"top1": top1, "top5": top5, "ece": ece, "nll": nll, "n_images": n, "top5_k": 5}


def test_robustness_rows_markdown_and_spider(tmp_path):
    evals = [
        write(tmp_path / "e1.json", {**scores(50.0), "run": "syn", "evalset": {"name": "val"}}),
        write(tmp_path / "e2.json", {**scores(70.0), "run": "ref", "evalset": {"name": "val"}}),
        write(
            tmp_path / "e3.json",
            {
                **scores(30.0),
                "run": "ref",
                "evalset": {"name": "c"},
                "corruptions": {"fog": {"1": scores(40.0), "2": scores(20.0)}},
                "per_corruption": {"fog": scores(30.0)},
            },
        ),
    ]
    attacks = [
        write(
            tmp_path / "a.json",
            {
                "model": "syn",
                "evalset": "val",
                "attack": "pgd",
                "epsilon_255": 1,
                "subset": {"n_images": 8},
                "adversarial": scores(5.0, ece=0.4),
            },
        )
    ]
    out = tmp_path / "t"
    main_robustness(
        eval_files=evals, attack_files=attacks, kinds=KINDS, csv=out / "r.csv", markdown=out / "r.md", png=out / "r.png"
    )
    table = pd.read_csv(out / "r.csv", dtype={"strength": str})
    pgd = table[table.kind == "adversarial"].iloc[0]
    assert (pgd.model, pgd.train_data, pgd.perturbation, pgd.strength, pgd.top1, pgd.ece, pgd.n_images) == (
        "syn",
        "synthetic",
        "pgd",
        "1/255",
        5.0,
        0.4,
        8,
    )
    fog = table[(table.kind == "corruption") & (table.perturbation == "fog")]
    assert dict(zip(fog.strength, fog.top1)) == {"1": 40.0, "2": 20.0, "mean": 30.0}
    assert table[(table.perturbation == "mean")].top1.item() == 30.0
    assert set(table[table.kind == "clean"].model) == {"syn", "ref"}
    md = (out / "r.md").read_text()
    assert "| ref (real) | 70.0 / 90.0 (0.100) |" in md and "| syn | 5.0 (0.400) |" in md
    assert "c fog s1" in md
    assert (out / "r.png").read_bytes()[:4] == b"\x89PNG"


def stats(model, evalset, value):
    return {"model": model, "evalset": evalset, "n_images": 10, "dim": 4, **{s: value for s in STATISTICS}}


def test_representation_table_and_reference(tmp_path):
    files = [
        write(tmp_path / "s1.json", stats("syn", "val", 0.2)),
        write(tmp_path / "s2.json", stats("ref", "val", 0.4)),
    ]
    out = tmp_path / "t"
    table = main_representation(
        stat_files=files, kinds=KINDS, reference=None, csv=out / "s.csv", markdown=out / "s.md", png=out / "s.png"
    )
    assert reference_model(table, None) == "ref"  # the real-data model by default
    assert list(pd.read_csv(out / "s.csv").model) == ["ref", "syn"]
    assert "| ref (real) | 0.4000 |" in (out / "s.md").read_text()
    assert (out / "s.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="representation.reference: model 'other'"):
        reference_model(table, "other")
