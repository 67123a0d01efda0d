"""Robustness and representation tables from hand-made evaluation, attack and statistics JSON files, and
from the files the evaluate and attack scripts write."""

import json

import pandas as pd
import pytest
from test_attacks import FGSM, run_attack_script
from test_evaluation import MODEL_CLASSES, image_folder, ranking_checkpoint, run_evaluate

from imagenet_sd.report.robustness_tables import (
    STATISTICS,
    reference_model,
    write_representation_tables,
    write_robustness_tables,
)

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
                "subset": {"size": 8, "seed": 0, "n_images": 8},
                "clean": scores(60.0),
                "adversarial": scores(5.0, ece=0.4),
            },
        )
    ]
    out = tmp_path / "t"
    write_robustness_tables(
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
    assert "| ref (real) | 70.0 / 90.0 (0.100) |" in md and "| syn | 60.0 (0.100) | 5.0 (0.400) |" in md
    assert "c fog s1" in md
    assert (out / "r.png").read_bytes()[:4] == b"\x89PNG"


def markdown_cells(markdown: str, section: str, model: str) -> dict[str, str]:
    """Column -> cell of `model`'s row in a section (`## <section>`) of the robustness Markdown."""
    lines = markdown.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0].splitlines()
    header = next(line for line in lines if line.startswith("| model |"))
    row = next(line for line in lines if line.startswith(f"| {model} |"))
    return dict(zip(header.strip("| ").split(" | ")[1:], row.strip("| ").split(" | ")[1:]))


def attack(tmp_path, checkpoint, images, name: str, attack: str, epsilon: int, seed: int) -> str:
    """The attack script's result file: `attack` at `epsilon`/255 on a seeded half of `images`."""
    settings = {"method": "pgd", "steps": 2, "step_size": 0.5, "random_start": True} if attack == "pgd" else FGSM
    out = tmp_path / f"{name}.json"
    sampling = {"epsilon": epsilon, "subset": 4, "seed": seed, "model_name": "r"}  # the model run_evaluate names
    run_attack_script(checkpoint, images, out, attack=attack, settings=settings, **sampling)
    return str(out)


def test_attacks_are_shown_beside_the_clean_accuracy_of_their_own_subset(tmp_path):
    # The model always answers the last class: top-1 is the share of its images, 50% of the whole set.
    checkpoint = ranking_checkpoint(tmp_path / "c.pt", MODEL_CLASSES, list(range(1, 8)))
    images = image_folder(tmp_path / "set", {MODEL_CLASSES[0]: 4, MODEL_CLASSES[-1]: 4})
    evaluation = run_evaluate(tmp_path / "e.json", checkpoint, images, "set", {})
    attacks = [attack(tmp_path, checkpoint, images, m, m, 2, seed=0) for m in ("fgsm", "pgd")]
    subset = json.loads((tmp_path / "fgsm.json").read_text())["clean"]
    assert subset["top1"] != evaluation["top1"]  # the 4 attacked images are not a 50/50 sample
    out = tmp_path / "t"
    files = {"csv": out / "r.csv", "markdown": out / "r.md", "png": out / "r.png"}
    write_robustness_tables(eval_files=[str(tmp_path / "e.json")], attack_files=attacks, kinds={}, **files)
    table = pd.read_csv(out / "r.csv", dtype={"strength": str})
    row = table[table.kind == "clean_subset"]
    assert (row.top1.item(), row.ece.item(), row.n_images.item()) == pytest.approx((subset["top1"], subset["ece"], 4))
    assert table[table.kind == "clean"].top1.item() == pytest.approx(evaluation["top1"])
    cells = markdown_cells((out / "r.md").read_text(), "Adversarial", "r")
    assert list(cells)[0] == "set clean (attacked subset)"  # the first column, before the attacks on it
    assert cells["set clean (attacked subset)"] == f"{subset['top1']:.1f} ({subset['ece']:.3f})"
    assert set(cells) == {"set clean (attacked subset)", "set fgsm 2/255", "set pgd 2/255"}
    assert markdown_cells((out / "r.md").read_text(), "Clean", "r")["set"].startswith(f"{evaluation['top1']:.1f} /")


def test_attacks_on_different_subsets_of_a_set_are_named(tmp_path):
    checkpoint = ranking_checkpoint(tmp_path / "c.pt", MODEL_CLASSES, list(range(1, 8)))
    images = image_folder(tmp_path / "set", {MODEL_CLASSES[0]: 4, MODEL_CLASSES[-1]: 4})
    attacks = [attack(tmp_path, checkpoint, images, f"fgsm{seed}", "fgsm", 1, seed) for seed in (0, 1)]
    out = tmp_path / "t"
    with pytest.raises(ValueError, match=r"fgsm0\.json and .*fgsm1\.json \(model r, set set\) are on different"):
        write_robustness_tables(
            eval_files=[], attack_files=attacks, kinds={}, csv=out / "c", markdown=out / "m", png=out / "p"
        )


def stats(model, evalset, value):
    return {"model": model, "evalset": evalset, "n_images": 10, "dim": 4, **{s: value for s in STATISTICS}}


def test_representation_table_and_reference(tmp_path):
    files = [
        write(tmp_path / "s1.json", stats("syn", "val", 0.2)),
        write(tmp_path / "s2.json", stats("ref", "val", 0.4)),
    ]
    out = tmp_path / "t"
    table = write_representation_tables(
        stat_files=files, kinds=KINDS, reference=None, csv=out / "s.csv", markdown=out / "s.md", png=out / "s.png"
    )
    assert reference_model(table, None) == "ref"  # the real-data model by default
    assert list(pd.read_csv(out / "s.csv").model) == ["ref", "syn"]
    assert "| ref (real) | 0.4000 |" in (out / "s.md").read_text()
    assert (out / "s.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="representation.reference: model 'other'"):
        reference_model(table, "other")


def test_attack_strengths_and_severities_sort_by_size_not_as_text(tmp_path):
    attack = {"model": "syn", "evalset": "val", "attack": "pgd", "subset": {"size": 8, "seed": 0, "n_images": 8}}
    attacks = [
        write(
            tmp_path / f"a{eps}.json", {**attack, "epsilon_255": eps, "clean": scores(60.0), "adversarial": scores(9.0)}
        )
        for eps in (16, 2, 0.5)
    ]
    severities = {str(s): scores(50.0 - s) for s in (10, 2, 1)}
    evals = [
        write(
            tmp_path / "c.json",
            {
                **scores(30.0),
                "run": "syn",
                "evalset": {"name": "c"},
                "corruptions": {"fog": severities},
                "per_corruption": {"fog": scores(30.0)},
            },
        )
    ]
    out = tmp_path / "t"
    write_robustness_tables(
        eval_files=evals, attack_files=attacks, kinds=KINDS, csv=out / "r.csv", markdown=out / "r.md", png=out / "r.png"
    )
    table = pd.read_csv(out / "r.csv", dtype={"strength": str})
    assert list(table[table.kind == "adversarial"].strength) == ["0.5/255", "2/255", "16/255"]
    assert list(table[(table.kind == "corruption") & (table.perturbation == "fog")].strength) == [
        "1",
        "2",
        "10",
        "mean",
    ]
    header = (out / "r.md").read_text()
    assert header.index("pgd 2/255") < header.index("pgd 16/255")
