"""Calibration (ECE with 15 bins, NLL) from masked logits, and corruption sets in ImageNet-C's layout."""

import math

import pytest
import torch
from test_evaluation import MODEL_CLASSES, image_folder, ranking_checkpoint, run_evaluate

from imagenet_sd.evaluate.corruptions import corruption_folders
from imagenet_sd.evaluate.evaluation import Calibration

torch.set_num_threads(1)


def calibrate(logits, labels, mask=None):
    meter = Calibration()
    logits = torch.tensor(logits, dtype=torch.float64)
    mask = torch.ones(logits.shape[1], dtype=torch.bool) if mask is None else mask
    meter.update(logits, torch.tensor(labels), mask)
    return meter.result()


def test_ece_and_nll_by_hand():
    # Every image 90% confident: 9 of 10 right is perfectly calibrated, 5 of 10 is off by 0.4.
    confident = [[math.log(0.9), math.log(0.1)]] * 10
    calibrated = calibrate(confident, [0] * 9 + [1])
    assert calibrated["ece"] == pytest.approx(0.0, abs=1e-9)
    assert calibrated["nll"] == pytest.approx(-(9 * math.log(0.9) + math.log(0.1)) / 10)
    assert calibrate(confident, [0] * 5 + [1] * 5)["ece"] == pytest.approx(0.4)


def test_ece_weights_bins_by_their_images():
    # Bin (0.6, 0.667]: 2 images at 0.65, both right (gap 0.35); bin (0.933, 1]: 2 images at 0.95, one right (0.45).
    logits = [[math.log(0.65), math.log(0.35)]] * 2 + [[math.log(0.95), math.log(0.05)]] * 2
    result = calibrate(logits, [0, 0, 0, 1])
    assert result["ece"] == pytest.approx((2 * 0.35 + 2 * 0.45) / 4)
    assert result["ece_bins"] == 15


def test_calibration_uses_only_the_scored_classes():
    # Masking the third class renormalises over the first two: p = 0.5 each, NLL = log 2.
    result = calibrate([[0.0, 0.0, 5.0]], [0], torch.tensor([True, True, False]))
    assert result["nll"] == pytest.approx(math.log(2))
    assert result["ece"] == pytest.approx(0.5)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return ranking_checkpoint(tmp_path_factory.mktemp("ckpt") / "c.pt", MODEL_CLASSES, list(range(1, 8)))


def evaluate(tmp_path, checkpoint, images, evalset):
    return run_evaluate(tmp_path / "out.json", checkpoint, images, "set", evalset)


def test_evaluate_reports_ece_and_nll(checkpoint, tmp_path):
    # The ranking model is certain (its logits differ by hundreds): confidence 1, so ECE = 1 - top-1.
    folders = {w: (2 if w == MODEL_CLASSES[-1] else 1) for w in MODEL_CLASSES}
    r = evaluate(tmp_path, checkpoint, image_folder(tmp_path / "set", folders), {})
    assert r["top1"] == pytest.approx(25.0)
    assert r["ece"] == pytest.approx(0.75) and r["nll"] > 10


def test_corruption_sets_are_scored_per_corruption_and_severity(checkpoint, tmp_path):
    root = tmp_path / "c"
    image_folder(root / "fog" / "1", {MODEL_CLASSES[-1]: 2})  # top-1 100%
    image_folder(root / "fog" / "2", {MODEL_CLASSES[-1]: 1, MODEL_CLASSES[0]: 1})  # 50%
    image_folder(root / "snow" / "1", {MODEL_CLASSES[0]: 3, MODEL_CLASSES[-1]: 1})  # 25%
    r = evaluate(tmp_path, checkpoint, root, {"layout": "corruptions"})
    assert r["corruptions"]["fog"]["1"]["top1"] == pytest.approx(100.0)
    assert r["corruptions"]["fog"]["2"]["top1"] == pytest.approx(50.0)
    assert r["per_corruption"]["fog"]["top1"] == pytest.approx(75.0)
    assert r["top1"] == pytest.approx((100 + 50 + 25) / 3) and r["n_images"] == 8
    assert r["per_corruption"]["snow"]["ece"] == pytest.approx(0.75)


def test_a_wrong_corruption_layout_is_named(tmp_path):
    image_folder(tmp_path / "c" / "fog", {MODEL_CLASSES[0]: 1})  # wnid folders where severities belong
    with pytest.raises(ValueError, match=r"fog: expected severity folders .* found sub-folders: n00000001"):
        corruption_folders(tmp_path / "c")
