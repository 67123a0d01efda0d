"""Classifier heads through a checkpoint: loading rebuilds the head the model was trained with, so a consumer
(evaluate, attack) gets the trained model's logits, hence its softmax, calibration and attack gradients, and
not only its ranking of classes."""

import pytest
import torch
import torchvision
from conftest import load_script
from test_attacks import run_attack_script
from test_evaluation import MODEL_CLASSES, image_folder, run_evaluate

from imagenet_sd.evaluate.attacks import Normalized, run_attack
from imagenet_sd.evaluate.evaluation import Calibration, score_folder
from imagenet_sd.train import training as tr
from imagenet_sd.train.models import attach_head, build_model, export_state, load_checkpoint_model
from imagenet_sd.train.transforms import eval_transform

torch.set_num_threads(1)
HEADS = [{"head": "cosine"}, {"head": "linear", "projector": [32, 16]}, {"head": "cosine", "projector": [16]}]
FGSM = {"method": "fgsm"}


def trained_model(t: dict, num_classes: int) -> torch.nn.Module:
    """A resnet18 with the head of `t`, its BatchNorm statistics moved off their initial values."""
    torch.manual_seed(0)
    model = attach_head(build_model("resnet18", num_classes), t)
    model.train()
    model(torch.randn(8, 3, 32, 32))
    return model.eval()


def save_checkpoint(model: torch.nn.Module, t: dict, classes: list[str], path):
    """The fields the train rule saves (imagenet_sd.train.training.save_final) of `model`; (path, state, head state)."""
    state, head_state = export_state(model, t)
    record = {"state_dict": state, "head_state_dict": head_state, "arch": "resnet18", "classes": list(classes)}
    torch.save({**record, "training": t, "step": 0}, path)
    return path, state, head_state


def calibration(logits: torch.Tensor, labels: torch.Tensor) -> dict:
    meter = Calibration()
    meter.update(logits, labels, torch.ones(logits.shape[1], dtype=torch.bool))
    return meter.result()


@pytest.mark.parametrize("head", HEADS, ids=["cosine", "linear+projector", "cosine+projector"])
def test_checkpoint_heads_score_as_the_trained_model(head, tmp_path):
    t = tr.resolve_training(head)
    model = trained_model(t, 5)
    path, state, head_state = save_checkpoint(model, t, list("abcde"), tmp_path / "c.pt")
    x, labels = torch.randn(6, 3, 32, 32), torch.arange(6) % 5
    with torch.no_grad():
        trained = model(x)
        loaded = load_checkpoint_model(path)[0].eval()(x)
    torch.testing.assert_close(loaded, trained)  # the logits, not only their order
    assert calibration(loaded, labels) == pytest.approx(calibration(trained, labels))
    if t["projector"]:  # the torchvision state_dict is the encoder alone; the head travels beside it
        assert not any(k.startswith("fc.") for k in state) and head_state
    else:  # the export for torchvision: a plain ResNet with a bias-free fc that ranks classes as the head does
        plain = torchvision.models.resnet18()
        plain.fc = torch.nn.Linear(512, 5, bias=False)
        plain.load_state_dict(state)
        assert head_state is None
        with torch.no_grad():
            assert torch.equal(plain.eval()(x).argsort(1), trained.argsort(1))


@pytest.fixture(scope="module")
def cosine(tmp_path_factory):
    """(model with a cosine head, its checkpoint, an image folder of 5 of its 7 classes)."""
    tmp = tmp_path_factory.mktemp("cosine")
    t = tr.resolve_training({"head": "cosine", "temperature": 0.1})
    model = trained_model(t, len(MODEL_CLASSES))
    path = save_checkpoint(model, t, MODEL_CLASSES, tmp / "c.pt")[0]
    return model, path, image_folder(tmp / "set", {w: 2 for w in MODEL_CLASSES[:5]})


def test_evaluate_scores_a_cosine_head_checkpoint_with_the_trained_softmax(cosine, tmp_path):
    model, checkpoint, images = cosine
    settings = {"naming": "wnid", "batch_size": 4, "workers": 0, "device": torch.device("cpu")}
    before = score_folder(model, images, MODEL_CLASSES, eval_transform(32), **settings)
    after = run_evaluate(tmp_path / "e.json", checkpoint, images, "set", {})
    assert after["n_images"] == before["n_images"] == 10
    assert (after["top1"], after["top5"]) == (before["top1"], before["top5"])
    assert (after["nll"], after["ece"]) == pytest.approx((before["nll"], before["ece"]), rel=1e-4)


def test_attack_scores_a_cosine_head_checkpoint_with_the_trained_softmax(cosine, tmp_path):
    model, checkpoint, images = cosine
    sampling = {"resolution": 32, "subset": 8, "seed": 0, "batch_size": 4}
    loader, match = load_script("attack").attacked_subset(images, MODEL_CLASSES, {}, "set", **sampling)
    eps, ks = 2 / 255, (1, 5)
    before = run_attack(Normalized(model), loader, match.mask(MODEL_CLASSES), torch.device("cpu"), ks, eps, FGSM, 0)
    settings = {"attack": "fgsm", "settings": FGSM, "epsilon": 2, "subset": 8, "seed": 0}
    after = run_attack_script(checkpoint, images, tmp_path / "fgsm.json", **settings)
    for name in ("clean", "adversarial"):
        assert after[name]["correct_top1"] == before[name]["correct"][0]
        assert (after[name]["nll"], after[name]["ece"]) == pytest.approx(
            (before[name]["nll"], before[name]["ece"]), rel=1e-4
        )
