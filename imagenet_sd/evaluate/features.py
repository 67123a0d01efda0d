"""Frozen features: the 2048-d pooled output of a model (its classifier removed) on one split of one
dataset, with test-time preprocessing only, stored compactly as float16 with labels and class names.

File format (.npz): `features` float16 (N x D), `labels` int64 (N,), `classes` (the dataset's class names
in label order). Rows follow the dataset index's order.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch
from torchvision import transforms as T

from imagenet_sd.data.images import load_rgb
from imagenet_sd.runtime import atomic_path, pick_device
from imagenet_sd.train.models import feature_extractor, load_model

log = logging.getLogger(__name__)
INTERPOLATION = {"bicubic": T.InterpolationMode.BICUBIC, "bilinear": T.InterpolationMode.BILINEAR}


def preprocessing_transform(prep: dict) -> T.Compose:
    """Resize the shorter side, centre crop, normalise: no augmentation (the t-ReX transfer protocol)."""
    return T.Compose(
        [
            T.Resize(prep["resize"], interpolation=INTERPOLATION[prep["interpolation"]]),
            T.CenterCrop(prep["crop"]),
            T.ToTensor(),
            T.Normalize(prep["mean"], prep["std"]),
        ]
    )


class IndexedImages(torch.utils.data.Dataset):
    """Images of a dataset index (paths relative to its root), labelled as the index says."""

    def __init__(self, index: dict, transform):
        self.root, self.samples, self.transform = Path(index["root"]), index["samples"], transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i):
        path, label = self.samples[i]
        return self.transform(load_rgb(self.root / path)), label


@torch.no_grad()
def extract(model: torch.nn.Module, loader, device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    """(features float16, labels int64) of every image of `loader`, in its order."""
    model = feature_extractor(model).eval()
    chunks, labels = [], []
    for images, targets in loader:
        chunks.append(model(images.to(device, non_blocking=True)).float().cpu().numpy().astype(np.float16))
        labels.append(np.asarray(targets, dtype=np.int64))
    return np.concatenate(chunks), np.concatenate(labels)


def write_features(path, features: np.ndarray, labels: np.ndarray, classes: list[str]) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, features=features.astype(np.float16), labels=labels.astype(np.int64), classes=np.array(classes))


def read_features(path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    with np.load(path, allow_pickle=False) as data:
        return data["features"], data["labels"], [str(c) for c in data["classes"]]


def run_features(
    *,
    index_file,
    checkpoint,
    source: str,
    model_classes: list[str],
    arch: str,
    prep: dict,
    output,
    batch_size: int = 256,
    workers: int = 0,
    device=None,
) -> dict:
    """Features of one model on one dataset split (the `features` rule)."""
    device = pick_device(device)
    index = json.loads(Path(index_file).read_text())
    model, _ = load_model(checkpoint, source, model_classes, arch, device)
    loader = torch.utils.data.DataLoader(
        IndexedImages(index, preprocessing_transform(prep)),
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        pin_memory=device.type == "cuda",
    )
    features, labels = extract(model, loader, device)
    write_features(output, features, labels, index["classes"])
    log.info("%d images -> %s features of %s", len(labels), features.shape, checkpoint)
    return {"n_images": len(labels), "dim": int(features.shape[1])}
