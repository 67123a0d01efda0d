"""FGSM and PGD on [0, 1] images: ordering of accuracies on a trained small model, epsilon 0 = clean exactly."""

import json

import pytest
import torch
from conftest import REPO, load_script
from test_evaluation import MODEL_CLASSES, image_folder

from imagenet_sd.config import ConfigError
from imagenet_sd.evaluate.attacks import Normalized, attack_batch, fgsm, pgd, run_attack, subset_indices
from imagenet_sd.evaluate.protocols import pgd_alpha
from imagenet_sd.ops.cost import load_config
from imagenet_sd.train.models import build_model

torch.set_num_threads(1)
PGD = {"method": "pgd", "steps": 20, "step_size": 0.25, "random_start": True}
FGSM = {"method": "fgsm"}
BENCHMARK = {**PGD, "alpha": "2/225"}


def colour_task(n=120, seed=0):
    """3 classes of 3x8x8 images in [0, 1]: a class colour plus noise; easy for a linear model."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 3
    colours = torch.tensor([[0.7, 0.3, 0.3], [0.3, 0.7, 0.3], [0.3, 0.3, 0.7]])
    images = (colours[labels][:, :, None, None] + 0.15 * torch.randn(n, 3, 8, 8, generator=g)).clamp(0, 1)
    return images, labels


@pytest.fixture(scope="module")
def small_model():
    torch.manual_seed(0)
    model = Normalized(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(192, 3)))
    images, labels = colour_task(seed=1)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(100):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(images), labels).backward()
        opt.step()
    return model.eval()


def accuracy(model, eps, settings):
    images, labels = colour_task(seed=2)
    loader = [(images[i : i + 40], labels[i : i + 40]) for i in range(0, len(labels), 40)]
    found = run_attack(model, loader, torch.ones(3, dtype=torch.bool), torch.device("cpu"), (1, 2), eps, settings, 0)
    return found["clean"]["correct"][0], found["adversarial"]["correct"][0]


def test_pgd_is_at_most_fgsm_is_at_most_clean(small_model):
    clean, after_fgsm = accuracy(small_model, 0.15, FGSM)
    clean_again, after_pgd = accuracy(small_model, 0.15, PGD)
    assert clean == clean_again and clean >= 110  # the model learnt the task
    assert after_pgd <= after_fgsm <= clean
    assert after_pgd < clean  # the attack does something at this radius


def test_epsilon_zero_is_clean_accuracy_exactly(small_model):
    for settings in (FGSM, PGD):
        clean, adversarial = accuracy(small_model, 0.0, settings)
        assert adversarial == clean


def test_pgd_stays_in_the_ball_and_the_box(small_model):
    images, labels = colour_task(n=12, seed=3)
    mask = torch.ones(3, dtype=torch.bool)
    eps = 8 / 255
    adv = pgd(
        small_model,
        images,
        labels,
        mask,
        eps,
        steps=5,
        step_size=eps / 2,
        random_start=True,
        generator=torch.Generator().manual_seed(0),
    )
    assert (adv - images).abs().max() <= eps + 1e-6 and adv.min() >= 0 and adv.max() <= 1
    one_step = fgsm(small_model, images, labels, mask, eps)
    moved = (one_step - images).abs()
    at_edge = (one_step == 0) | (one_step == 1)
    assert torch.all(((moved - eps).abs() < 1e-6) | at_edge)  # every pixel moves by eps or stops at the box


def test_an_explicit_alpha_is_the_pgd_step(small_model):
    """`alpha: 2/225` (the public benchmark's torchattacks call) replaces step_size x eps; one step from the
    clean image moves every pixel by alpha unless the box stops it."""
    images, labels = colour_task(n=12, seed=4)
    mask = torch.ones(3, dtype=torch.bool)
    eps = 8 / 255
    for settings, step in (
        ({**PGD, "steps": 1, "random_start": False}, eps / 4),
        ({**BENCHMARK, "steps": 1, "random_start": False}, 2 / 225),
    ):
        adv = attack_batch(small_model, images, labels, mask, eps, settings)
        at_edge = (adv == 0) | (adv == 1)
        assert torch.all((((adv - images).abs() - step).abs() < 1e-6) | at_edge)
    assert pgd_alpha(BENCHMARK, 1 / 255) == pytest.approx(2 / 225)  # about 2.27 eps: the first step saturates
    with pytest.raises(ValueError, match="'2/0' is not a number"):
        pgd_alpha({**BENCHMARK, "alpha": "2/0"}, eps)


def test_the_config_names_a_bad_alpha(tmp_path):
    text = (REPO / "config/transfer.yaml").read_text()
    assert "alpha: 2/225" in text  # the shipped benchmark attack
    (tmp_path / "c.yaml").write_text(text.replace("alpha: 2/225", "alpha: two/225"))
    with pytest.raises(ConfigError, match="robustness.attacks.pgd-benchmark.alpha"):
        load_config([str(tmp_path / "c.yaml")])


def test_the_subset_is_fixed_by_its_seed():
    assert subset_indices(100, 10, 0) == subset_indices(100, 10, 0) != subset_indices(100, 10, 1)
    assert len(set(subset_indices(100, 10, 0))) == 10 and subset_indices(5, 10, 0) == list(range(5))


def run_attack_script(checkpoint, images, output, *, seed=0, model_name="m", evalset_name="set", **job) -> dict:
    """The attack rule's script (32 px, CPU; by default a run's model of MODEL_CLASSES on set `set`, 4 images
    a batch); its result. `job`: attack, settings, epsilon, subset and any other keyword of the script."""
    job = {"batch_size": 4, "model": {"source": "run", "classes": MODEL_CLASSES, "arch": "resnet18"}, **job}
    return load_script("attack").main(
        checkpoint=checkpoint,
        images=images,
        output=output,
        evalset={},
        seed=seed,
        resolution=32,
        model_name=model_name,
        evalset_name=evalset_name,
        device="cpu",
        **job,
    )


def test_attack_script_on_a_checkpoint_and_an_image_folder(tmp_path):
    torch.manual_seed(0)
    model = build_model("resnet18", len(MODEL_CLASSES))
    checkpoint = tmp_path / "c.pt"
    torch.save({"state_dict": model.state_dict(), "arch": "resnet18", "classes": MODEL_CLASSES, "step": 0}, checkpoint)
    images = image_folder(tmp_path / "set", {w: 2 for w in MODEL_CLASSES[:4]})
    out = tmp_path / "pgd.json"
    result = run_attack_script(checkpoint, images, out, attack="pgd", settings={**PGD, "steps": 2}, epsilon=0, subset=6)
    written = json.loads(out.read_text())
    assert written["subset"]["n_images"] == 6 and written["n_classes_scored"] == 4 and written["epsilon"] == 0
    assert result["adversarial"]["correct_top1"] == result["clean"]["correct_top1"]
    assert result["adversarial"]["ece"] == pytest.approx(result["clean"]["ece"])
