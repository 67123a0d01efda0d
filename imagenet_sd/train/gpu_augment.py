"""Batched training augmentations on the training device: random-resized crops, flips, colour jitter,
grayscale, Gaussian blur, solarisation and normalisation of a whole batch of decoded uint8 images.

The loader workers only read and decode JPEGs (imagenet_sd.data.loader); every random choice is made here, per
sample, from one CPU torch generator seeded per step, and the pixel work runs wherever the batch is: on
the GPU in a GPU run, on the CPU in a CPU run (the same code). Drawing the parameters on the CPU keeps the
GPU free of data-dependent shapes (no host syncs), and seeding per step makes a resumed run draw exactly
what the uninterrupted run would have.

Distributions are those of the per-image PIL reference pipeline in imagenet_sd.train.transforms (torchvision's
RandomResizedCrop and ColorJitter with its random order of the four adjustments, RandomGrayscale, PIL's
Gaussian blur with radius = standard deviation, RandomSolarize); tests compare their statistics. Crops are
resampled by `roi_align` with an adaptive sampling grid (bilinear, area-averaged when shrinking), one call
per crop size, instead of PIL's bicubic filter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torchvision.ops import roi_align

from imagenet_sd.train.transforms import (
    BLUR_RADIUS,
    GLOBAL_CROP_SCALE,
    IMAGENET_MEAN,
    IMAGENET_STD,
    JITTER,
    LOCAL_CROP_SCALE,
    SIMPLE_CROP_SCALE,
    SOLARIZE_THRESHOLD,
)

RATIO = (3 / 4, 4 / 3)  # RandomResizedCrop's aspect-ratio range
GRAY_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R 601-2 luma, as PIL's convert("L") and torchvision


@dataclass(frozen=True)
class ViewPolicy:
    """`count` crops of side `size` per image, and the probabilities of their photometric augmentations."""

    size: int
    count: int
    scale: tuple[float, float]
    flip: bool = True
    jitter_p: float = 0.0
    gray_p: float = 0.0
    blur_p: float = 0.0
    solarize_p: float = 0.0


def view_policies(training: dict) -> list[ViewPolicy]:
    """The crops a training asks for: DINO's global and local crops (t-ReX: one global crop), or `simple`."""
    if training["augmentation"] == "simple":
        scale = tuple(training["global_crop_scale"] or SIMPLE_CROP_SCALE)
        return [ViewPolicy(training["resolution"], training["global_crops"], scale, training["flip"])]
    if training["augmentation"] != "dino":
        raise ValueError(f"unknown augmentation {training['augmentation']!r} (known: dino, simple)")
    views = [
        ViewPolicy(
            training["resolution"],
            training["global_crops"],
            tuple(training["global_crop_scale"] or GLOBAL_CROP_SCALE),
            training["flip"],
            0.8,
            0.2,
            0.2,
            0.2,
        )
    ]
    if training["local_crops"]:
        views.append(
            ViewPolicy(
                training["local_resolution"],
                training["local_crops"],
                tuple(training["local_crop_scale"] or LOCAL_CROP_SCALE),
                training["flip"],
                0.8,
                0.2,
                0.5,
                0.0,
            )
        )
    return views


def uniform(n: int, low: float, high: float, gen: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=gen, dtype=torch.float64)


# ---- random-resized crops ----------------------------------------------------------------------------
def crop_boxes(sizes: torch.Tensor, scale, gen: torch.Generator, ratio=RATIO, tries: int = 10) -> torch.Tensor:
    """(x0, y0, x1, y1) of one random-resized crop per (height, width) row: torchvision's sampler, vectorised
    (up to `tries` draws of area and log-aspect, the first that fits wins, else the central crop)."""
    h, w = sizes[:, :1].double(), sizes[:, 1:].double()
    n = len(sizes)
    area = h * w * (scale[0] + (scale[1] - scale[0]) * torch.rand(n, tries, generator=gen, dtype=torch.float64))
    log_r = math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * torch.rand(
        n, tries, generator=gen, dtype=torch.float64
    )
    cw, ch = torch.round(torch.sqrt(area * log_r.exp())), torch.round(torch.sqrt(area / log_r.exp()))
    fits = (cw > 0) & (cw <= w) & (ch > 0) & (ch <= h)
    first = fits.double().argmax(1, keepdim=True)
    cw, ch, found = cw.gather(1, first)[:, 0], ch.gather(1, first)[:, 0], fits.any(1)
    h, w = h[:, 0], w[:, 0]
    in_ratio = w / h  # fallback: the largest central crop within the ratio range
    fw = torch.where(in_ratio > ratio[1], torch.round(h * ratio[1]), w)
    fh = torch.where(in_ratio < ratio[0], torch.round(w / ratio[0]), h)
    cw, ch = torch.where(found, cw, fw), torch.where(found, ch, fh)
    u = torch.rand(n, 2, generator=gen, dtype=torch.float64)
    y0 = torch.where(found, torch.floor(u[:, 0] * (h - ch + 1)), torch.floor((h - ch) / 2))
    x0 = torch.where(found, torch.floor(u[:, 1] * (w - cw + 1)), torch.floor((w - cw) / 2))
    return torch.stack([x0, y0, x0 + cw, y0 + ch], 1)


def resized_crops(images: torch.Tensor, sizes: torch.Tensor, view: ViewPolicy, gen) -> torch.Tensor:
    """`view.count` random-resized crops of every image, randomly flipped unless `view.flip` is off,
    view-major, as floats in [0, 1]."""
    n = len(images)
    boxes = crop_boxes(sizes.repeat(view.count, 1), view.scale, gen)
    # drawn even when off, so that every later draw (colour jitter, blur) stays the same with and without flips
    flips = (torch.rand(len(boxes), generator=gen) < 0.5) & view.flip
    index = torch.arange(n, dtype=torch.float64).repeat(view.count)[:, None]
    dtype = torch.float16 if images.device.type == "cuda" else torch.float32
    rois = torch.cat([index, boxes], 1).to(images.device, dtype, non_blocking=True)
    crops = roi_align(images.to(dtype), rois, view.size, spatial_scale=1.0, sampling_ratio=0, aligned=True)
    crops = crops.float().div_(255)
    flips = flips.to(images.device, non_blocking=True)[:, None, None, None]
    return torch.where(flips, crops.flip(-1), crops)


# ---- photometric augmentations (float images in [0, 1], shape (n, 3, h, w)) ---------------------------------
def grayscale(x: torch.Tensor) -> torch.Tensor:
    weights = torch.tensor(GRAY_WEIGHTS, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * weights).sum(1, keepdim=True)


def adjust_brightness(x, f):
    return (x * f).clamp_(0, 1)


def adjust_contrast(x, f):
    mean = grayscale(x).mean(dim=(1, 2, 3), keepdim=True)
    return (f * x + (1 - f) * mean).clamp_(0, 1)


def adjust_saturation(x, f):
    return (f * x + (1 - f) * grayscale(x)).clamp_(0, 1)


def adjust_hue(x, f):
    """Rotate the hue by f turns: RGB -> HSV, shift, HSV -> RGB (the usual closed-form inverse)."""
    v, _ = x.max(1, keepdim=True)
    c = v - x.min(1, keepdim=True)[0]
    safe_c = torch.where(c > 0, c, torch.ones_like(c))
    r, g, b = x[:, :1], x[:, 1:2], x[:, 2:]
    h = torch.where(v == r, (g - b) / safe_c, torch.where(v == g, 2 + (b - r) / safe_c, 4 + (r - g) / safe_c))
    h = torch.where(c > 0, h / 6, torch.zeros_like(h))
    h = torch.remainder(h + f, 1.0)
    s = torch.where(v > 0, c / torch.where(v > 0, v, torch.ones_like(v)), torch.zeros_like(v))
    k = torch.remainder(torch.tensor([5.0, 3.0, 1.0], device=x.device).view(1, 3, 1, 1) + h * 6, 6)
    return v - v * s * torch.clamp(torch.minimum(k, 4 - k), 0, 1)


JITTER_OPS = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)


def color_jitter(x: torch.Tensor, p: float, gen: torch.Generator) -> torch.Tensor:
    """torchvision's RandomApply(ColorJitter(0.4, 0.4, 0.2, 0.1), p): per sample, with probability p, the four
    adjustments in a random order, each with its own factor."""
    n = len(x)
    apply = torch.rand(n, generator=gen) < p
    factors = torch.stack(
        [
            uniform(n, 1 - JITTER[0], 1 + JITTER[0], gen),
            uniform(n, 1 - JITTER[1], 1 + JITTER[1], gen),
            uniform(n, 1 - JITTER[2], 1 + JITTER[2], gen),
            uniform(n, -JITTER[3], JITTER[3], gen),
        ],
        1,
    )
    order = torch.rand(n, 4, generator=gen).argsort(1)
    for position in range(4):
        for op, adjust in enumerate(JITTER_OPS):
            picked = torch.nonzero(apply & (order[:, position] == op))[:, 0]  # CPU tensors: no device sync
            if len(picked):
                f = factors[picked, op].to(x.device, x.dtype, non_blocking=True).view(-1, 1, 1, 1)
                picked = picked.to(x.device, non_blocking=True)
                x[picked] = adjust(x[picked], f)
    return x


def random_grayscale(x: torch.Tensor, p: float, gen: torch.Generator) -> torch.Tensor:
    picked = torch.nonzero(torch.rand(len(x), generator=gen) < p)[:, 0]
    if len(picked):
        picked = picked.to(x.device, non_blocking=True)
        x[picked] = grayscale(x[picked]).expand(-1, 3, -1, -1)
    return x


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur, one standard deviation per image, edges replicated (as PIL's box blurs)."""
    radius = math.ceil(3 * BLUR_RADIUS[1])
    taps = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    kernel = torch.exp(-0.5 * (taps[None, :] / sigma.to(x.device, x.dtype)[:, None]) ** 2)
    kernel = (kernel / kernel.sum(1, keepdim=True)).repeat_interleave(3, 0)  # (n * 3, taps)
    n, c, h, w = x.shape
    y = F.pad(x.reshape(1, n * c, h, w), (radius, radius, radius, radius), mode="replicate")
    y = F.conv2d(y, kernel[:, None, None, :], groups=n * c)
    y = F.conv2d(y, kernel[:, None, :, None], groups=n * c)
    return y.reshape(n, c, h, w)


def random_blur(x: torch.Tensor, p: float, gen: torch.Generator) -> torch.Tensor:
    picked = torch.nonzero(torch.rand(len(x), generator=gen) < p)[:, 0]
    sigma = uniform(len(picked), *BLUR_RADIUS, gen)
    if len(picked):
        picked = picked.to(x.device, non_blocking=True)
        x[picked] = gaussian_blur(x[picked], sigma)
    return x


def random_solarize(x: torch.Tensor, p: float, gen: torch.Generator) -> torch.Tensor:
    picked = (torch.rand(len(x), generator=gen) < p).to(x.device, non_blocking=True)[:, None, None, None]
    # PIL inverts uint8 values >= threshold; on [0, 1] floats made from uint8 that is x >= threshold / 255
    return torch.where(picked & (x >= (SOLARIZE_THRESHOLD - 0.5) / 255), 1 - x, x)


def normalize(x: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def photometric(x: torch.Tensor, view: ViewPolicy, gen: torch.Generator) -> torch.Tensor:
    """Colour jitter, grayscale, blur, solarisation (in the reference pipeline's order), then normalisation."""
    if view.jitter_p:
        x = color_jitter(x, view.jitter_p, gen)
    if view.gray_p:
        x = random_grayscale(x, view.gray_p, gen)
    if view.blur_p:
        x = random_blur(x, view.blur_p, gen)
    if view.solarize_p:
        x = random_solarize(x, view.solarize_p, gen)
    return normalize(x)


def augment_batch(
    images: torch.Tensor, sizes: torch.Tensor, views: list[ViewPolicy], gen: torch.Generator
) -> list[torch.Tensor]:
    """uint8 images (n, 3, H, W) on the device, their true (height, width) on the CPU (images smaller than the
    batch are padded at the bottom right) -> one normalised float tensor per view policy, holding its
    `count` crops of every image view-major (crop 0 of all images, then crop 1, ...)."""
    return [photometric(resized_crops(images, sizes, view, gen), view, gen) for view in views]
