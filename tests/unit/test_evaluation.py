"""Evaluation: exact top-1/top-5 of a model whose ranking we control, and masking to the shared classes."""

import json
from pathlib import Path

import pytest
import torch
from conftest import load_script
from PIL import Image

from imagenet_sd.evaluate.evaluation import match_classes, topk_correct
from imagenet_sd.train.models import build_model

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[2]
MODEL_CLASSES = ["n00000001", "n00000002", "n00000003", "n00000004", "n00000005", "n00000006", "n00000007"]
TRAINING = {"eval_resolution": 32, "batch_size": 4, "workers": 0}


def ranking_checkpoint(path: Path, classes, preference) -> Path:
    """A resnet18 checkpoint that ranks classes by `preference` (higher first) for every image.

    The last residual block adds 1 before its ReLU, so every pooled feature is >= 1; with fc row c equal to
    preference[c] everywhere, logit c = preference[c] x (sum of features): the same order for any input.
    """
    model = build_model("resnet18", len(classes))
    with torch.no_grad():
        last = model.layer4[-1].bn2
        last.weight.zero_()
        last.bias.fill_(1.0)
        model.fc.weight.copy_(torch.tensor(preference, dtype=torch.float)[:, None].expand(-1, 512))
    torch.save({"state_dict": model.state_dict(), "arch": "resnet18", "classes": list(classes), "step": 0}, path)
    return path


def image_folder(root: Path, images_per_folder: dict) -> Path:
    for wnid, n in images_per_folder.items():
        (root / wnid).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.new("RGB", (40, 36), (30 * i % 256, 100, 200)).save(root / wnid / f"{wnid}_{i:06d}.jpg")
    return root


def run_evaluate(
    out: Path, checkpoint: Path, images: Path, name: str, evalset: dict, *, run="r", classes=None, **model
) -> dict:
    """The evaluate rule's script on `images` (by default with the ranking model, as run `r`); its JSON result.
    `model`: the script's other keywords (training settings, an external model's source and arch)."""
    model = {"training": TRAINING, **model}
    load_script("evaluate").main(
        checkpoint=checkpoint,
        images=images,
        output=out,
        classes=classes or MODEL_CLASSES,
        evalset_name=name,
        evalset=evalset,
        run=run,
        device="cpu",
        **model,
    )
    return json.loads(out.read_text())


def evaluate(tmp_path, checkpoint, folders, name="set", **evalset):
    images = image_folder(tmp_path / name, folders)
    return run_evaluate(tmp_path / f"{name}.json", checkpoint, images, name, {"description": "test images", **evalset})


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    # Ranking n00000007 > n00000006 > ... > n00000001 for every image.
    return ranking_checkpoint(tmp_path_factory.mktemp("ckpt") / "c.pt", MODEL_CLASSES, list(range(1, 8)))


def test_exact_top1_top5_when_all_classes_are_scored(checkpoint, tmp_path):
    # 2 images of the top class, 1 of each of the others: top-1 hits only the top class, top-5 the top 5.
    folders = {w: (2 if w == MODEL_CLASSES[-1] else 1) for w in MODEL_CLASSES}
    r = evaluate(tmp_path, checkpoint, folders)
    assert r["n_images"] == 8 and r["n_classes_scored"] == 7 and r["top5_k"] == 5
    assert r["correct_top1"] == 2 and r["top1"] == pytest.approx(25.0)
    assert r["correct_top5"] == 2 + 4 and r["top5"] == pytest.approx(75.0)
    assert r["model_classes_missing_from_evalset"] == [] and r["evalset_classes_not_in_model"] == []
    assert r["evalset"] == {"name": "set", "description": "test images", "path": str(tmp_path / "set"), "clone": None}
    assert len(r["checkpoint"]["sha256"]) == 64 and "torch" in r["versions"]


def test_logits_are_masked_to_the_shared_classes(checkpoint, tmp_path):
    # The set holds 3 of the model's classes (its preferred ones are absent) and one class the model lacks.
    folders = {"n00000001": 2, "n00000002": 1, "n00000004": 3, "n09999999": 4}
    r = evaluate(tmp_path, checkpoint, folders)
    # Unmasked, every image would be called n00000007 (0% top-1); masked, the best shared class n00000004 wins.
    assert r["n_images"] == 6 and r["n_classes_scored"] == 3
    assert r["classes_scored"] == ["n00000001", "n00000002", "n00000004"]
    assert r["correct_top1"] == 3 and r["top1"] == pytest.approx(50.0)
    assert r["top5_k"] == 3 and r["top5"] == pytest.approx(100.0)  # top-5 among 3 classes: top-3, all correct
    assert r["evalset_classes_not_in_model"] == ["n09999999"]
    assert r["model_classes_missing_from_evalset"] == ["n00000003", "n00000005", "n00000006", "n00000007"]


def test_a_declared_class_list_masks_the_logits_even_where_a_class_has_no_images(checkpoint, tmp_path):
    # A partial copy of a set whose declared classes include n00000006, which the model prefers to n00000004:
    # with the list, every image is called n00000006 (0% top-1); without it, n00000004 would win (1 of 3).
    folders = {"n00000001": 2, "n00000004": 1, "n09999999": 1}
    listed = tmp_path / "classes.txt"
    listed.write_text("# the set's classes\nn00000001\nn00000004\nn00000006\n")
    r = evaluate(tmp_path, checkpoint, folders, classes=str(listed))
    assert r["classes_scored"] == ["n00000001", "n00000004", "n00000006"] and r["n_images"] == 3
    assert r["correct_top1"] == 0
    plain = evaluate(tmp_path, checkpoint, folders, name="plain")
    assert plain["classes_scored"] == ["n00000001", "n00000004"] and plain["correct_top1"] == 1


def test_the_shipped_imagenet_r_and_a_lists_hold_200_wnids_and_the_paper_overlaps():
    from imagenet_sd.evaluate.evaluation import read_class_list

    r = read_class_list(ROOT / "data/imagenet_r_200_wnids.txt")
    a = read_class_list(ROOT / "data/imagenet_a_200_wnids.txt")
    in100 = set((ROOT / "data/imagenet100_wnids.txt").read_text().split())
    assert len(set(r)) == len(set(a)) == 200
    assert (len(in100 & set(r)), len(in100 & set(a))) == (19, 15)  # the ImageNet-100 classes in IN-R and IN-A


def test_set_without_shared_classes_is_an_error(checkpoint, tmp_path):
    with pytest.raises(ValueError, match="no images of the model's classes"):
        evaluate(tmp_path, checkpoint, {"n09999999": 2})


def test_topk_correct_by_hand():
    logits = torch.tensor([[0.1, 0.9, 0.5, 0.3], [0.8, 0.1, 0.2, 0.7]])
    labels = torch.tensor([2, 3])
    everything = torch.ones(4, dtype=torch.bool)
    assert topk_correct(logits, labels, everything, (1, 2)) == [0, 2]
    without_best = torch.tensor([True, False, True, True])
    assert topk_correct(logits, labels, without_best, (1, 2)) == [1, 2]


def test_match_classes_keeps_model_order():
    m = match_classes(["n3", "n1", "n2"], ["n2", "n3", "n9"])
    assert (m.scored, m.model_only, m.set_only) == (["n3", "n2"], ["n1"], ["n9"])
    assert m.mask(["n3", "n1", "n2"]).tolist() == [True, False, True]


def test_a_missing_evaluation_folder_names_the_folder_and_the_expected_layout(tmp_path):
    from imagenet_sd.evaluate.evaluation import image_folder

    with pytest.raises(FileNotFoundError, match=r"evaluation set folder not found: .*nope.*one sub-folder per wnid"):
        image_folder(tmp_path / "nope", ["n01440764"], None)


def test_folders_named_by_imagenet1k_index_are_matched_by_wnid(tmp_path):
    """ImageNetV2 names its folders 0..999; index 0 is n01440764 (tench), 1 is n01443537 (goldfish)."""
    from imagenet_sd.evaluate.evaluation import image_folder as load_folder

    root = image_folder(tmp_path / "v2", {"0": 1, "1": 2, "999": 1})
    dataset, match = load_folder(root, ["n01443537", "n01440764"], None, naming="imagenet1k_index")
    assert match.scored == ["n01443537", "n01440764"] and match.set_only == ["n15075141"]
    assert sorted(dataset.targets) == [0, 0, 1]  # goldfish (model index 0) twice, tench once
    (root / "1000").mkdir()
    Image.new("RGB", (8, 8)).save(root / "1000" / "x.jpg")
    with pytest.raises(ValueError, match=r"0\.\.999; got \['1000'\]"):
        load_folder(root, ["n01440764"], None, naming="imagenet1k_index")
