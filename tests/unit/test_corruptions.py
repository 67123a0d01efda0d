"""Corruption sets (ImageNet-C's layout): fed at their stored size as Hendrycks and Dietterich do, per-set
`resize`, and mCE against AlexNet's published errors."""

import pytest
import torch
from PIL import Image
from test_evaluation import MODEL_CLASSES, TRAINING, run_evaluate
from torchvision import transforms as T

from imagenet_sd.evaluate.attacks import unit_transform
from imagenet_sd.evaluate.corruptions import alexnet_errors, mean_corruption_error
from imagenet_sd.planning.models import evalset_resize, scoring_spec
from imagenet_sd.train.models import build_model
from imagenet_sd.train.transforms import IMAGENET_MEAN, IMAGENET_STD, eval_transform

torch.set_num_threads(1)
SIDE = TRAINING["eval_resolution"]  # the demo-scale stand-in for ImageNet-C's 224 px
SCORED = MODEL_CLASSES[:2]


def noise_images(folder, n_per_class: int, side: int = SIDE) -> list[tuple[Image.Image, int]]:
    """Seeded noise PNGs (lossless: what is read is what was made), and the model's label of each."""
    generator, made = torch.Generator().manual_seed(0), []
    for label, wnid in enumerate(SCORED):
        (folder / wnid).mkdir(parents=True)
        for i in range(n_per_class):
            pixels = torch.randint(0, 256, (side, side, 3), generator=generator, dtype=torch.uint8).numpy()
            Image.fromarray(pixels).save(folder / wnid / f"{i}.png")
            made.append((Image.fromarray(pixels), label))
    return made


@pytest.fixture(scope="module")
def random_checkpoint(tmp_path_factory):
    """A randomly initialised resnet18: its logits move with every pixel, so resizing shows in the NLL."""
    torch.manual_seed(0)
    model = build_model("resnet18", len(MODEL_CLASSES))
    path = tmp_path_factory.mktemp("ckpt") / "random.pt"
    torch.save({"state_dict": model.state_dict(), "arch": "resnet18", "classes": MODEL_CLASSES, "step": 0}, path)
    return path, model.eval()


def nll_by_hand(model, made, transform) -> float:
    """Mean -log p(label) over the scored classes (the set's), each image fed through `transform`."""
    with torch.no_grad():
        logits = model(torch.stack([transform(image) for image, _ in made]))[:, : len(SCORED)]
    labels = torch.tensor([label for _, label in made])
    return float(-logits.double().log_softmax(1).gather(1, labels[:, None]).mean())


def test_a_corruption_set_is_fed_at_its_stored_size(random_checkpoint, tmp_path):
    checkpoint, model = random_checkpoint
    made = noise_images(tmp_path / "c" / "gaussian_noise" / "5", 3)
    stored = T.Compose([T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    resized = eval_transform(SIDE, resize=True)
    as_stored, zoomed = nll_by_hand(model, made, stored), nll_by_hand(model, made, resized)
    assert abs(as_stored - zoomed) > 1e-3  # the resize to 256/224 of the crop does change what the model sees
    result = run_evaluate(tmp_path / "c.json", checkpoint, tmp_path / "c", "c", {"layout": "corruptions"})
    assert result["corruptions"]["gaussian_noise"]["5"]["nll"] == pytest.approx(as_stored, rel=1e-5)
    assert result["preprocessing"] == {"resize_shorter_side": None, "interpolation": None, "center_crop": SIDE}
    # `resize: true` asks for the ImageFolder protocol on a corruption set
    result = run_evaluate(
        tmp_path / "r.json", checkpoint, tmp_path / "c", "c", {"layout": "corruptions", "resize": True}
    )
    assert result["corruptions"]["gaussian_noise"]["5"]["nll"] == pytest.approx(zoomed, rel=1e-5)
    assert result["preprocessing"]["resize_shorter_side"] == round(SIDE * 256 / 224)


def test_without_resize_a_stored_image_is_centre_cropped_and_a_small_one_is_refused():
    image = Image.new("RGB", (SIDE + 8, SIDE), (10, 200, 30))
    image.putpixel((4, 0), (255, 0, 0))  # the first pixel of the centre crop
    cropped = unit_transform(SIDE, resize=False)(image)
    assert cropped.shape == (3, SIDE, SIDE) and cropped[:, 0, 0].tolist() == [1.0, 0.0, 0.0]
    with pytest.raises(ValueError, match=rf"image of {SIDE - 1}x{SIDE} px is smaller than the {SIDE} px centre crop"):
        eval_transform(SIDE, resize=False)(Image.new("RGB", (SIDE - 1, SIDE)))


def test_resize_defaults_by_layout_and_imagefolder_params_stay_as_they_were():
    folder = {"path": "val", "classes": None, "folder_names": "wnid", "layout": "imagefolder", "kind": None}
    assert evalset_resize({**folder, "resize": None}) and not evalset_resize({"layout": "corruptions"})
    # a resized ImageFolder set's params are what they were before `resize` existed: its results do not rerun
    assert (
        scoring_spec({**folder, "resize": None})
        == scoring_spec({**folder, "resize": True})
        == {k: v for k, v in folder.items() if k != "kind"}
    )
    assert scoring_spec({**folder, "resize": False})["resize"] is False
    corruptions = {"path": "c", "layout": "corruptions", "resize": None}
    assert scoring_spec(corruptions) == {"path": "c", "layout": "corruptions", "resize": False}
    assert scoring_spec({**corruptions, "resize": True})["resize"] is True


def cells(top1_of) -> dict:
    """Scores of every (corruption, severity) folder of ImageNet-C: top-1 given per corruption and severity."""
    return {c: {str(s): {"top1": top1_of(c, s)} for s in range(1, 6)} for c in alexnet_errors()}


def test_mce_is_the_mean_of_errors_relative_to_alexnets():
    alexnet = alexnet_errors()
    assert len(alexnet) == 15 and alexnet["gaussian_noise"] == pytest.approx(0.886428)
    # AlexNet's own errors give CE 100 on every corruption
    found = mean_corruption_error(cells(lambda c, s: 100 * (1 - alexnet[c])), 1000)
    assert found["mce"] == pytest.approx(100.0) and set(found["ce"]) == set(alexnet)
    # Severity s scores 10 s % top-1: error 1 - 0.3 on average, whatever the corruption
    found = mean_corruption_error(cells(lambda c, s: 10.0 * s), 1000)
    assert found["mce"] == pytest.approx(sum(70 / e for e in alexnet.values()) / 15)
    assert found["ce"]["brightness"] == pytest.approx(70 / 0.564592)


def test_mce_is_only_given_where_it_compares_with_alexnet():
    full = cells(lambda c, s: 50.0)
    assert mean_corruption_error(full, 100)["mce"] is None
    assert "1000-way" in mean_corruption_error(full, 100)["mce_note"]
    fewer = {c: v for c, v in full.items() if c != "fog"}
    assert "missing: fog; others: none" in mean_corruption_error(fewer, 1000)["mce_note"]
    extra = {**full, "spatter": full["fog"]}
    assert mean_corruption_error(extra, 1000)["mce"] is None
    three = {**full, "fog": {s: full["fog"][s] for s in ("1", "2", "3")}}
    assert "severities 1-5" in mean_corruption_error(three, 1000)["mce_note"]
