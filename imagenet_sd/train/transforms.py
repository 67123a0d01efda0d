"""The evaluation transform, and the per-image PIL training augmentations (DINO's multi-crop, or a simple one).

Training itself augments whole batches on the training device (imagenet_sd.train.gpu_augment); the per-image
pipelines here are its reference: the distributions it must reproduce (tests compare their statistics) and
the "old" side of bench/training_cpu.py. Every training transform returns a list of crops of one image;
with the supervised loss each crop carries the image's label (as in t-ReX), so multi-crop simply means
more, smaller labelled views per image.
"""

from __future__ import annotations

import torch
from PIL import ImageFilter
from torchvision import transforms as T

from imagenet_sd.train.preprocessing import EVAL_RESIZE_RATIO

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Crop scales (fraction of the image area) of t-ReX (naver/trex), which uses DINO's augmentations with one
# global crop for supervised training.
GLOBAL_CROP_SCALE = (0.25, 1.0)
LOCAL_CROP_SCALE = (0.05, 0.25)
SIMPLE_CROP_SCALE = (0.08, 1.0)  # torchvision's RandomResizedCrop default, the usual ImageNet recipe
JITTER = (0.4, 0.4, 0.2, 0.1)  # DINO's colour jitter: brightness, contrast, saturation, hue
BLUR_RADIUS = (0.1, 2.0)  # DINO's Gaussian blur: radius (PIL: the standard deviation) uniform in this range
SOLARIZE_THRESHOLD = 128


def uniform(low: float, high: float) -> float:
    return low + (high - low) * torch.rand(()).item()


class GaussianBlur:
    """DINO's blur: with probability p, a PIL Gaussian blur of radius uniform in [0.1, 2]."""

    def __init__(self, p: float, radius_min: float = BLUR_RADIUS[0], radius_max: float = BLUR_RADIUS[1]):
        self.p, self.radius_min, self.radius_max = p, radius_min, radius_max

    def __call__(self, img):
        if torch.rand(()).item() >= self.p:
            return img
        return img.filter(ImageFilter.GaussianBlur(radius=uniform(self.radius_min, self.radius_max)))

    def __repr__(self):
        return f"GaussianBlur(p={self.p}, radius=[{self.radius_min}, {self.radius_max}])"


def normalize() -> T.Compose:
    return T.Compose([T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


def flip_and_color_jitter() -> T.Compose:
    return T.Compose(
        [
            T.RandomHorizontalFlip(p=0.5),
            T.RandomApply([T.ColorJitter(*JITTER)], p=0.8),
            T.RandomGrayscale(p=0.2),
        ]
    )


class MultiCrop:
    """DINO's augmentation: one global crop and `local_crops` local crops (t-ReX's supervised variant)."""

    def __init__(self, resolution: int, local_crops: int, local_resolution: int):
        bicubic = T.InterpolationMode.BICUBIC
        self.local_crops = local_crops
        self.global_transform = T.Compose(
            [
                T.RandomResizedCrop(resolution, scale=GLOBAL_CROP_SCALE, interpolation=bicubic),
                flip_and_color_jitter(),
                GaussianBlur(p=0.2),
                T.RandomSolarize(threshold=SOLARIZE_THRESHOLD, p=0.2),
                normalize(),
            ]
        )
        self.local_transform = T.Compose(
            [
                T.RandomResizedCrop(local_resolution, scale=LOCAL_CROP_SCALE, interpolation=bicubic),
                flip_and_color_jitter(),
                GaussianBlur(p=0.5),
                normalize(),
            ]
        )

    def __call__(self, img) -> list[torch.Tensor]:
        return [self.global_transform(img)] + [self.local_transform(img) for _ in range(self.local_crops)]


class SingleCrop:
    """Random-resized crop + horizontal flip: the plain supervised recipe (one crop per image)."""

    def __init__(self, resolution: int):
        self.transform = T.Compose(
            [
                T.RandomResizedCrop(resolution, scale=SIMPLE_CROP_SCALE, interpolation=T.InterpolationMode.BILINEAR),
                T.RandomHorizontalFlip(p=0.5),
                normalize(),
            ]
        )

    def __call__(self, img) -> list[torch.Tensor]:
        return [self.transform(img)]


def train_transform(training: dict):
    """The augmentation a training recipe names: `dino` (multi-crop) or `simple`."""
    if training["augmentation"] == "dino":
        return MultiCrop(training["resolution"], training["local_crops"], training["local_resolution"])
    if training["augmentation"] == "simple":
        return SingleCrop(training["resolution"])
    raise ValueError(f"unknown augmentation {training['augmentation']!r} (known: dino, simple)")


class AtLeast:
    """Passes an image through unchanged, or fails naming its size when it is smaller than the centre crop
    (torchvision's CenterCrop would pad it with black borders): a set fed at its stored size must be stored
    at least at the model's evaluation resolution."""

    def __init__(self, side: int):
        self.side = side

    def __call__(self, img):
        if min(img.size) < self.side:
            raise ValueError(
                f"image of {img.size[0]}x{img.size[1]} px is smaller than the {self.side} px centre crop; images "
                "fed at their stored size (evalsets.<name>.resize: false) must be at least that large"
            )
        return img

    def __repr__(self):
        return f"AtLeast({self.side})"


def eval_geometry(resolution: int, resize: bool = True) -> list:
    """The evaluation's resize and centre crop. `resize`: the shorter side to resolution x 256/224 first (the
    standard ImageNet protocol for photographs of any size); without it, a centre crop of the stored image
    (ImageNet-C's protocol: its images are stored at 224 x 224 and a resize would zoom and smooth them)."""
    first = T.Resize(round(resolution * EVAL_RESIZE_RATIO), interpolation=T.InterpolationMode.BILINEAR)
    return [first if resize else AtLeast(resolution), T.CenterCrop(resolution)]


def eval_transform(resolution: int, resize: bool = True) -> T.Compose:
    """Resize (unless `resize` is false), centre crop, normalise (eval_geometry)."""
    return T.Compose([*eval_geometry(resolution, resize), normalize()])
