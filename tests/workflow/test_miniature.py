"""The embedded demo's miniature study (issue 22): the tiny pipeline adapted on the real digits' train split, a
synthetic digits clone generated from the digits' prompts, and the same ResNet-18 recipe trained on each, both
scored on the same real held-out digits. The targets: the real row >= 90%, the synthetic row >= 50% (chance
10%). And the point of the miniature: a label permutation between the prompt files and the evaluation drops
the synthetic row to chance, so the table would change if a label were swapped anywhere."""

import json
import shutil

import pandas as pd
import pytest
import yaml
from conftest import planned_jobs, run_snakemake, write_config

from imagenet_sd import paths

CHANCE = 100 / 10
MARGIN = 10  # percentage points: a permuted run must land at most this far above chance
SYNTHETIC, REAL, HELDOUT = "digits-sd", "digits-real", "digits-heldout"


def top1(workdir, model: str, evalset: str = HELDOUT) -> float:
    return json.loads((workdir / paths.EVALUATION.format(model=model, evalset=evalset)).read_text())["top1"]


def cycled(items: list) -> list:
    """Each item replaced by the next one (the last by the first): a permutation that moves every label."""
    return items[1:] + items[:1]


@pytest.fixture
def demo_copy(demo_run, tmp_path):
    workdir = tmp_path / "wf"
    shutil.copytree(demo_run, workdir, symlinks=True)  # copy2 keeps mtimes: the copy is as complete as the run
    return workdir


@pytest.mark.e2e
def test_the_miniature_answers_the_papers_question_with_real_numbers(demo_run):
    real, synthetic = top1(demo_run, REAL), top1(demo_run, SYNTHETIC)
    assert real >= 90, f"the real-trained model scores {real:.1f}% on real held-out digits"
    assert synthetic >= 50, f"the synthetic-only model scores {synthetic:.1f}% on real held-out digits"
    table = pd.read_csv(demo_run / paths.EVALUATION_TABLE)
    rows = table.set_index("run").loc[[SYNTHETIC, REAL]]
    assert set(rows["evalset"]) == {HELDOUT}
    assert rows["top1"].tolist() == pytest.approx([synthetic, real], abs=0.01)
    for model in (SYNTHETIC, REAL):  # the same 540 real images: 54 of each digit, never trained or adapted on
        result = json.loads((demo_run / paths.EVALUATION.format(model=model, evalset=HELDOUT)).read_text())
        assert result["n_images"] == 540
    card = json.loads((demo_run / "results/clones/digits-sd/card.json").read_text())
    assert "adaptation" in json.dumps(card)  # the clone says its generator was adapted on real images


@pytest.mark.e2e
def test_prompts_permuted_after_adaptation_drop_the_synthetic_row_to_chance(demo_copy):
    """The adapted pipeline learned digit i from prompt i; each class's prompt file now holds the next class's
    prompts, so class i's images show digit i+1: a label swapped between the prompt files and generation."""
    digits = [line.split("\t")[0] for line in (demo_copy / "config/sheets/digits.tsv").read_text().splitlines()[1:]]
    recipe_dir = next(
        p.parent for p in (demo_copy / "results/prompts").glob(f"*/{digits[0]}-*.json")
    )  # the digits' prompt files of the demo's recipe
    files = [next(recipe_dir.glob(f"{wnid}-*.json")) for wnid in digits]
    records = [json.loads(f.read_text()) for f in files]
    for f, record, source in zip(files, records, cycled(records)):
        moved = {k: source[k] for k in ("recipes", "examples", "name_override")}
        f.write_text(json.dumps({**record, **moved}, indent=1, sort_keys=True))
    adapted = next((demo_copy / "results/adapted").iterdir())
    run_snakemake(demo_copy, "--touch", str(adapted.relative_to(demo_copy) / "model_index.json"))
    target = paths.EVALUATION.format(model=SYNTHETIC, evalset=HELDOUT)
    jobs = planned_jobs(demo_copy, target)
    assert jobs == {"generate": 10, "pack": 1, "train": 1, "evaluate": 1}, jobs  # the adaptation stays
    run_snakemake(demo_copy, target)
    permuted = top1(demo_copy, SYNTHETIC)
    assert permuted <= CHANCE + MARGIN, f"{permuted:.1f}% with every prompt moved to the next class"


@pytest.mark.e2e
def test_held_out_labels_permuted_drop_both_rows_to_chance(demo_copy):
    """The same real held-out images with their class folders renamed one class on: an evaluation set whose
    labels are swapped. Only the new set's evaluate jobs run."""
    heldout = demo_copy / paths.HELDOUT.format(clone=REAL)
    folders = sorted(p.name for p in heldout.iterdir() if p.is_dir())
    shuffled = demo_copy / "shuffled-heldout"
    for source, name in zip(folders, cycled(folders)):
        shutil.copytree(heldout / source, shuffled / name)
    config = yaml.safe_load((demo_copy / "config.yaml").read_text())
    config["evalsets"]["shuffled"] = {"path": str(shuffled), "description": "labels moved one class on"}
    for run in (SYNTHETIC, REAL):
        config["runs"][run]["evaluate"].append("shuffled")
    write_config(demo_copy, config, "shuffled.yaml")
    targets = [paths.EVALUATION.format(model=m, evalset="shuffled") for m in (SYNTHETIC, REAL)]
    arguments = [*targets, "--configfile", "shuffled.yaml"]  # last: --configfile takes every name after it
    assert planned_jobs(demo_copy, *arguments) == {"evaluate": 2}
    run_snakemake(demo_copy, *arguments)
    for model in (SYNTHETIC, REAL):
        score = top1(demo_copy, model, "shuffled")
        assert score <= CHANCE + MARGIN, f"{model}: {score:.1f}% on held-out digits with permuted labels"
