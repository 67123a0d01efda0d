"""External checkpoints: the torchvision state_dict format loads exactly, bad files are named, and the
workflow checks them on the login node before any GPU job."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision
from conftest import load_script
from PIL import Image

from imagenet_sd.evaluate.features import preprocessing_transform, read_features
from imagenet_sd.train.models import (
    build_model,
    load_model,
    load_state_dict_model,
    read_state_dict,
    torchvision_weights,
)

torch.set_num_threads(1)
CLASSES = ["n01440764", "n01443537", "n01484850", "n01491361", "n01494475"]  # the first five ImageNet-1K classes
PREP = {
    "resize": 40,
    "crop": 32,
    "interpolation": "bicubic",
    "mean": [0.485, 0.456, 0.406],
    "std": [0.229, 0.224, 0.225],
}


def released_format(path, num_classes=None, seed=0, bias=False):
    """A resnet18 state_dict saved as the paper's released files are: plain torchvision keys, fc without bias."""
    torch.manual_seed(seed)
    model = build_model("resnet18", len(CLASSES) if num_classes is None else num_classes, fc_bias=bias)
    torch.save(model.state_dict(), path)
    return path


def images(root, n=6):
    (root / "cls").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (48, 44, 3), dtype=np.uint8)).save(root / "cls" / f"{i}.png")
    return root


def test_features_of_an_external_checkpoint_equal_plain_torchvision(tmp_path):
    path = released_format(tmp_path / "released.pth")
    root = images(tmp_path / "set")
    index = tmp_path / "index.json"
    load_script("index_dataset").main(
        root=str(root), layout="imagefolder", splits={"test": ""}, folder_names="wnid", split="test", output=str(index)
    )
    out = tmp_path / "f.npz"
    load_script("features").main(
        index_file=str(index),
        checkpoint=str(path),
        preprocessing=PREP,
        output=str(out),
        batch_size=4,
        device="cpu",
        model={"source": "state_dict", "classes": CLASSES, "arch": "resnet18"},
    )
    features, labels, classes = read_features(out)
    # The same weights in plain torchvision, its classifier cut off by hand.
    plain = torchvision.models.resnet18(weights=None)
    plain.fc = torch.nn.Linear(512, len(CLASSES), bias=False)
    plain.load_state_dict(torch.load(path, weights_only=True))
    plain.fc = torch.nn.Identity()
    plain.eval()
    transform = preprocessing_transform(PREP)
    with torch.no_grad():
        batch = torch.stack([transform(Image.open(root / "cls" / f"{i}.png").convert("RGB")) for i in range(6)])
        expected = plain(batch).numpy()
    assert features.dtype == np.float16 and features.shape == (6, 512)
    np.testing.assert_allclose(features.astype(np.float32), expected, rtol=2e-3, atol=2e-3)
    assert labels.tolist() == [0] * 6 and classes == ["cls"]


def test_torchvision_layout_with_fc_bias_and_wrappers_load(tmp_path):
    model = build_model("resnet18", 3, fc_bias=True)
    state = {f"module.{k}": v for k, v in model.state_dict().items()}
    torch.save({"state_dict": state}, tmp_path / "ddp.pth")
    loaded = load_state_dict_model(tmp_path / "ddp.pth", "resnet18", ["a", "b", "c"])
    assert loaded.fc.bias is not None
    assert torch.equal(loaded.fc.weight, model.fc.weight)


def test_keys_and_shapes_that_do_not_fit_are_named(tmp_path):
    path = released_format(tmp_path / "ten.pth", num_classes=10)
    with pytest.raises(ValueError, match=r"fc\.weight: shape \(10, 512\) in the file, \(5, 512\) expected"):
        load_state_dict_model(path, "resnet18", CLASSES)
    state = read_state_dict(released_format(tmp_path / "ok.pth"))
    del state["layer1.0.conv1.weight"]
    state["projector.weight"] = torch.zeros(2)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match=r"missing key layer1\.0\.conv1\.weight.*unexpected key projector\.weight"):
        load_state_dict_model(tmp_path / "bad.pth", "resnet18", CLASSES)
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.pth: not a readable torch state_dict"):
        load_state_dict_model(tmp_path / "junk.pth", "resnet18", CLASSES)


def test_a_missing_fetched_file_names_the_fetch_command(tmp_path):
    path = tmp_path / "resources/models/torchvision/ResNet50_Weights.IMAGENET1K_V1.pth"
    with pytest.raises(FileNotFoundError, match=rf"`snakemake {path}`"):
        load_model(path, "state_dict", CLASSES, "resnet50")


def test_torchvision_weights_names():
    assert torchvision_weights("ResNet50_Weights.IMAGENET1K_V1").url.endswith(".pth")
    with pytest.raises(ValueError, match="ResNet50_Weights.NOPE"):
        torchvision_weights("ResNet50_Weights.NOPE")


def model_config(checkpoint: str) -> dict:
    """A config with one external model on a digits transfer set: no clone, no run."""
    return {
        "seed": 0,
        "class_sets": {"five": {"sheet": "five.tsv"}},
        "models": {"ext": {"checkpoint": checkpoint, "class_set": "five", "arch": "resnet18", "transfer": "all"}},
        "transfer_sets": {"few": {"path": "few", "layout": "imagefolder"}},
        "transfer": {
            "preprocessing": {"resize": 16, "crop": 16},
            "logistic": {"trials": 2, "max_iter": 50},
            "workers": 0,
        },
    }
