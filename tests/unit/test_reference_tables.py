"""references.csv / .md from the evaluate and attack jobs' own result files: an external model named as a
published one gets its published numbers (clean, calibration and attacks) beside ours, and an attack's
published number sits only beside the attack that ran its protocol."""

import json
import math

import pandas as pd
import pytest
import torch
from conftest import REPO
from test_attacks import run_attack_script
from test_evaluation import image_folder, run_evaluate
from test_models import CLASSES, released_format

from imagenet_sd.config import ConfigError
from imagenet_sd.evaluate.protocols import attack_settings
from imagenet_sd.ops.cost import load_config
from imagenet_sd.report.reference_tables import write_reference_tables
from imagenet_sd.report.references import reference_facts

torch.set_num_threads(1)
TRAINING = {"arch": "resnet18", "eval_resolution": 32, "batch_size": 4, "workers": 0}


@pytest.fixture(scope="module")
def transfer_config():
    return load_config([str(REPO / "config/transfer.yaml")])


@pytest.fixture(scope="module")
def results(tmp_path_factory, transfer_config):
    """Result files of two external models of config/transfer.yaml on a small ImageNet-val stand-in, written
    by the evaluate and attack scripts themselves: every attack of the shipped config at 1/255."""
    root = tmp_path_factory.mktemp("results")
    checkpoint = released_format(root / "released.pth")
    images = image_folder(root / "val", {w: 2 for w in CLASSES})
    external = {"source": "state_dict", "arch": "resnet18"}
    evals, attacks = [], []
    for name in ("imagenet-1k-sd", "timm-rn50-a1"):
        out = root / name / "eval.json"
        run_evaluate(out, checkpoint, images, "in1k-val", {}, run=name, classes=CLASSES, training=TRAINING, **external)
        evals.append(out)
        for attack in transfer_config["robustness"]["attacks"]:
            out = root / name / f"{attack}.json"
            settings = attack_settings(transfer_config, attack)
            run_attack_script(
                checkpoint,
                images,
                out,
                model_name=name,
                evalset_name="in1k-val",
                attack=attack,
                settings=settings,
                epsilon=1,
                subset=6,
                batch_size=6,
                model={**external, "classes": CLASSES},
            )
            attacks.append(out)
    return root, evals, attacks


def references(results, config, out) -> pd.DataFrame:
    """The `references` rule's script on the result files, with the facts of `config`; the CSV it wrote."""
    _, evals, attacks = results
    facts = reference_facts(config)
    write_reference_tables(
        eval_files=evals, attack_files=attacks, facts=facts, csv=out / "references.csv", markdown=out / "references.md"
    )
    return pd.read_csv(out / "references.csv")


def with_models(config):
    """A copy of `config` whose model entries can be edited."""
    return {**config, "models": {name: dict(spec) for name, spec in config["models"].items()}}


def row(table, model, metric, attack=None):
    part = table[(table.model == model) & (table.metric == metric)]
    part = part[part.attack.isna()] if attack is None else part[part.attack == attack]
    assert len(part) == 1, (model, metric, attack)
    return part.iloc[0]


def test_published_numbers_of_external_models_sit_beside_their_results(results, transfer_config):
    root, evals, _ = results
    table = references(results, transfer_config, root)
    measured = json.loads(evals[0].read_text())
    for metric, published in (("top1", 42.89), ("nll", 2.570), ("ece", 0.030)):
        r = row(table, "imagenet-1k-sd", metric)
        assert r.value == pytest.approx(measured[metric], abs=1e-5) and r.reference == published
        assert r.difference == pytest.approx(measured[metric] - published, abs=1e-5)
        assert "benchmarking-synthetic-clones" in r.reference_source
    fgsm = json.loads((root / "imagenet-1k-sd" / "fgsm.json").read_text())
    r = row(table, "imagenet-1k-sd", "fgsm_top1", "fgsm")
    assert r.reference == 2.1 and r.difference == pytest.approx(fgsm["adversarial"]["top1"] - 2.1, abs=1e-5)
    assert r.n_images == 6
    # The benchmark's PGD steps alpha = 2/225 (about 2.27 eps): its number sits beside the attack that does the
    # same, not beside ours (eps/4 per step).
    assert row(table, "imagenet-1k-sd", "pgd_top1", "pgd-benchmark").reference == 1.3
    assert math.isnan(row(table, "imagenet-1k-sd", "pgd_top1", "pgd").reference)
    assert row(table, "timm-rn50-a1", "top1").reference == 80.11
    assert row(table, "timm-rn50-a1", "pgd_top1", "pgd-benchmark").reference == 16.7
    assert row(table, "timm-rn50-a1", "fgsm_top1", "fgsm").reference == 27.0
    assert math.isnan(row(table, "timm-rn50-a1", "top5").reference)  # no published top-5 for it
    markdown = (root / "references.md").read_text()
    assert "| imagenet-1k-sd | in1k-val | pgd-benchmark 1/255 | pgd_top1 |" in markdown
    assert "| imagenet-1k-sd | in1k-val | pgd 1/255 |" not in markdown


def test_a_model_without_published_as_gets_no_published_number(results, transfer_config, tmp_path):
    config = with_models(transfer_config)
    config["models"]["imagenet-1k-sd"]["published_as"] = None
    table = references(results, config, tmp_path)
    assert table[table.model == "imagenet-1k-sd"].reference.isna().all()
    assert table[table.model == "timm-rn50-a1"].reference.notna().any()


def test_published_as_must_fit_the_weights(transfer_config):
    config = with_models(transfer_config)
    config["models"]["torchvision-rn50"]["weights"] = "ResNet50_Weights.IMAGENET1K_V2"
    with pytest.raises(ConfigError, match="models.torchvision-rn50.published_as: torchvision-resnet50-v1 numbers"):
        reference_facts(config)
