"""Published numbers beside ours: the references table, and matching it to result rows by config facts."""

import copy
import math

import pandas as pd
import pytest
from conftest import REPO

from imagenet_sd.config import ConfigError
from imagenet_sd.ops.cost import load_config
from imagenet_sd.report.references import attach_references, load_references, reference_facts


@pytest.fixture
def in1k(monkeypatch):
    monkeypatch.chdir(REPO)
    return load_config(["config/imagenet1k_sd.yaml"])


@pytest.fixture
def in100(monkeypatch):
    monkeypatch.chdir(REPO)
    return load_config(["config/imagenet100_sd.yaml"])


def evaluation(rows):
    """A hand-made table shaped like results/tables/evaluation.csv (one row per run x evaluation set)."""
    return pd.DataFrame([{"run": run, "evalset": ev, "top1": t1, "top5": t5} for run, ev, t1, t5 in rows])


def cell(table, run, evalset, metric, column):
    return table.loc[(table.run == run) & (table.evalset == evalset) & (table.metric == metric), column].item()


def test_shipped_configs_state_their_class_set_and_evaluation_kinds(in1k, in100):
    facts = reference_facts(in1k)
    assert facts["models"]["in1k-sd-rn50"] == {
        "subject": "synthetic-run",
        "class_set": "imagenet1k",
        "guidance": 2.0,
        "recipe": "c, d_c",
        "scale": 1.0,
    }
    assert facts["evalsets"] == {
        "in1k-val": "imagenet-val",
        "in1k-v2": "imagenet-v2",
        "in1k-sketch": "imagenet-sketch",
        "in-r": "imagenet-r",
        "in-a": "imagenet-a",
        "in1k-c": None,
    }
    assert reference_facts(in100)["models"]["in100-sd-rn50"]["class_set"] == "imagenet100"


def test_imagenet1k_rows_get_the_paper_numbers_and_the_difference(in1k):
    table = evaluation([("in1k-sd-rn50", "in1k-val", 40.0, 71.0), ("in1k-sd-rn50", "in-r", 20.0, 40.0)])
    out = attach_references(table, reference_facts(in1k))
    assert len(out) == 4 and set(out.metric) == {"top1", "top5"}
    assert cell(out, "in1k-sd-rn50", "in1k-val", "top1", "reference") == 42.9
    assert cell(out, "in1k-sd-rn50", "in1k-val", "top1", "difference") == pytest.approx(40.0 - 42.9)
    assert cell(out, "in1k-sd-rn50", "in1k-val", "top5", "difference") == pytest.approx(71.0 - 70.3)
    assert "from_paper" in cell(out, "in1k-sd-rn50", "in1k-val", "top5", "reference_source")
    assert "secondary" in cell(out, "in1k-sd-rn50", "in1k-val", "top1", "reference_source")
    # ImageNet-R numbers exist only for the released checkpoint, not for a model we train.
    assert math.isnan(cell(out, "in1k-sd-rn50", "in-r", "top1", "reference"))
    assert cell(out, "in1k-sd-rn50", "in-r", "top1", "reference_source") == ""


def test_guidance_and_recipe_pick_the_reference(in1k):
    config = copy.deepcopy(in1k)
    config["generators"]["sd14-g2"]["guidance_scale"] = 7.5
    table = evaluation([("in1k-sd-rn50", "in1k-val", 25.0, 50.0)])
    assert (
        cell(attach_references(table, reference_facts(config)), "in1k-sd-rn50", "in1k-val", "top1", "reference") == 26.2
    )
    config["recipes"]["c_dc"]["family"] = "c, h_c inside b"
    out = attach_references(table, reference_facts(config))
    assert cell(out, "in1k-sd-rn50", "in1k-val", "top1", "reference") == 30.1
    assert math.isnan(cell(out, "in1k-sd-rn50", "in1k-val", "top5", "reference"))  # 70.3 is the guidance-2.0 model
    config["recipes"]["c_dc"]["family"] = "c"
    assert attach_references(table, reference_facts(config)).reference.isna().all()


def test_a_guidance_mixture_matches_no_published_number(in1k):
    config = copy.deepcopy(in1k)
    config["generators"]["sd14-g2"]["guidance_scale"] = [2.0, 7.5]
    assert reference_facts(config)["models"]["in1k-sd-rn50"]["guidance"] is None
    table = evaluation([("in1k-sd-rn50", "in1k-val", 25.0, 50.0)])
    assert attach_references(table, reference_facts(config)).reference.isna().all()


def test_images_per_class_multiplier_and_superseded_numbers(in100):
    table = evaluation([("in100-sd-rn50", "in100-val", 70.0, 90.0)])
    out = attach_references(table, reference_facts(in100))
    assert cell(out, "in100-sd-rn50", "in100-val", "top5", "reference") == 91.7  # not the first version's 83
    assert math.isnan(cell(out, "in100-sd-rn50", "in100-val", "top1", "reference"))
    config = copy.deepcopy(in100)
    config["clones"]["in100-sd"]["images_per_class"] = 20 * 1300
    out = attach_references(table, reference_facts(config))
    assert cell(out, "in100-sd-rn50", "in100-val", "top1", "reference") == 72.4
    assert math.isnan(cell(out, "in100-sd-rn50", "in100-val", "top5", "reference"))


def test_the_most_specific_reference_wins(in1k):
    refs = load_references()
    extra = refs[(refs.metric == "top1") & (refs.value == "42.9")].assign(guidance="", recipe="", value="10.0")
    table = evaluation([("in1k-sd-rn50", "in1k-val", 40.0, 70.0)])
    out = attach_references(table, reference_facts(in1k), pd.concat([extra, refs], ignore_index=True))
    assert cell(out, "in1k-sd-rn50", "in1k-val", "top1", "reference") == 42.9
    config = copy.deepcopy(in1k)
    config["generators"]["sd14-g2"]["guidance_scale"] = 3.0  # only the blank-guidance row matches now
    out = attach_references(table, reference_facts(config), pd.concat([extra, refs], ignore_index=True))
    assert cell(out, "in1k-sd-rn50", "in1k-val", "top1", "reference") == 10.0


def test_bad_reference_tables_name_the_line(tmp_path):
    text = (REPO / "data/references.tsv").read_text().splitlines()
    twin = tmp_path / "twin.tsv"
    twin.write_text("\n".join([text[0], text[1], text[1].replace("42.9", "43.0")]) + "\n")
    with pytest.raises(ConfigError, match="lines 2, 3"):
        load_references(twin)
    bad = tmp_path / "bad.tsv"
    bad.write_text("\n".join([text[0], text[1].replace("imagenet-val", "imagenet-val2")]) + "\n")
    with pytest.raises(ConfigError, match="line 2: eval_kind 'imagenet-val2'"):
        load_references(bad)
    pgd = next(line for line in text if "alpha=2/225" in line)
    bad.write_text("\n".join([text[0], pgd.replace("alpha=2/225", "step=2/225")]) + "\n")
    with pytest.raises(ConfigError, match="line 2: protocol .*'step=2/225' is not one of eps=..., alpha=..."):
        load_references(bad)
    # One name for two different real-ImageNet ResNet-50s (torchvision's V1, timm's A1) is not a subject.
    bad.write_text("\n".join([text[0], pgd.replace("released-checkpoint", "torchvision-resnet50")]) + "\n")
    with pytest.raises(ConfigError, match="line 2: subject 'torchvision-resnet50' is not one of"):
        load_references(bad)


def test_the_schema_rejects_an_unknown_evaluation_kind(in1k, tmp_path, monkeypatch):
    config = (REPO / "config/imagenet1k_sd.yaml").read_text().replace("kind: imagenet-r", "kind: imagenet-rendition")
    (tmp_path / "c.yaml").write_text(config)
    with pytest.raises(ConfigError, match="evalsets.in-r.kind"):
        load_config([str(tmp_path / "c.yaml")])
