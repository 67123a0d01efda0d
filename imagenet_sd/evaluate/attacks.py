"""L-infinity adversarial attacks (FGSM, PGD) on [0, 1] images, with normalisation inside the model.

The attacked tensor is the image a camera gives, in [0, 1]; ImageNet's mean/std normalisation is the
model's first layer. Attacking normalised tensors instead silently rescales epsilon per channel by 1/std
(about 4.4x) and clamps to the wrong box. The loss is the cross-entropy over the classes scored on the set
(masked logits, as evaluation ranks them), so an attack never "wins" by moving to a class the set lacks.
"""

from __future__ import annotations

import random

import torch
import torch.nn.functional as F
from torchvision import transforms as T

from imagenet_sd.evaluate.evaluation import Calibration, topk_correct
from imagenet_sd.evaluate.protocols import pgd_alpha
from imagenet_sd.seeds import derive_seed
from imagenet_sd.train.transforms import IMAGENET_MEAN, IMAGENET_STD, eval_geometry

METHODS = ("fgsm", "pgd")


class Normalized(torch.nn.Module):
    """`model` preceded by ImageNet normalisation: it takes [0, 1] images."""

    def __init__(self, model: torch.nn.Module, mean=IMAGENET_MEAN, std=IMAGENET_STD):
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model((images - self.mean) / self.std)


def unit_transform(resolution: int, resize: bool = True) -> T.Compose:
    """The evaluation transform without its normalisation: [0, 1] tensors of the same pixels."""
    return T.Compose([*eval_geometry(resolution, resize), T.ToTensor()])


def masked(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return logits.masked_fill(~mask.to(logits.device), float("-inf"))


def loss_gradient(model, images: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    images = images.detach().requires_grad_(True)
    loss = F.cross_entropy(masked(model(images), mask), labels, reduction="sum")
    (grad,) = torch.autograd.grad(loss, images)
    return grad


def fgsm(model, images: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor, eps: float) -> torch.Tensor:
    """Fast gradient sign method (Goodfellow et al. 2015): one step of size eps along the gradient's sign."""
    grad = loss_gradient(model, images, labels, mask)
    return (images + eps * grad.sign()).clamp(0, 1).detach()


def pgd(
    model,
    images: torch.Tensor,
    labels: torch.Tensor,
    mask: torch.Tensor,
    eps: float,
    *,
    steps: int,
    step_size: float,
    random_start: bool,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Projected gradient descent (Madry et al. 2018): from a uniform random point of the eps-ball, `steps`
    signed steps of `step_size`, each projected back onto the ball and the [0, 1] box."""
    adv = images.clone()
    if random_start:
        noise = torch.rand(images.shape, generator=generator, device=images.device, dtype=images.dtype)
        adv = (images + (2 * noise - 1) * eps).clamp(0, 1)
    for _ in range(steps):
        adv = adv + step_size * loss_gradient(model, adv, labels, mask).sign()
        adv = torch.min(torch.max(adv, images - eps), images + eps).clamp(0, 1).detach()
    return adv


def attack_batch(model, images, labels, mask, eps: float, settings: dict, generator=None) -> torch.Tensor:
    """Adversarial images of one batch for a named attack's settings ({method, steps, step_size, random_start,
    alpha}; PGD's step is `alpha` when given, else step_size x eps)."""
    if settings["method"] == "fgsm":
        return fgsm(model, images, labels, mask, eps)
    if settings["method"] == "pgd":
        return pgd(
            model,
            images,
            labels,
            mask,
            eps,
            steps=settings["steps"],
            step_size=pgd_alpha(settings, eps),
            random_start=settings["random_start"],
            generator=generator,
        )
    raise ValueError(f"unknown attack method {settings['method']!r} (known: {', '.join(METHODS)})")


def subset_indices(n: int, size: int | None, seed: int) -> list[int]:
    """A fixed, seeded subset of an evaluation set's images (sorted; all of them when size >= n)."""
    if size is None or size >= n:
        return list(range(n))
    return sorted(random.Random(derive_seed("attack-subset", seed)).sample(range(n), size))


def run_attack(
    model, loader, mask: torch.Tensor, device: torch.device, ks: tuple[int, int], eps: float, settings: dict, seed: int
) -> dict:
    """Clean and adversarial correct counts and calibration of `model` (taking [0, 1] images) over `loader`."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    generator = torch.Generator(device=device).manual_seed(derive_seed("pgd-start", seed) % 2**62)
    counts = {"clean": [0, 0], "adversarial": [0, 0]}
    meters = {"clean": Calibration(), "adversarial": Calibration()}
    seen = 0
    for images, labels in loader:
        images, labels = images.to(device), labels.to(device)
        adv = attack_batch(model, images, labels, mask, eps, settings, generator)
        with torch.no_grad():
            for name, batch in (("clean", images), ("adversarial", adv)):
                logits = model(batch)
                counts[name] = [a + b for a, b in zip(counts[name], topk_correct(logits, labels, mask, ks))]
                meters[name].update(logits, labels, mask)
        seen += len(labels)
    return {"n_images": seen, **{name: {"correct": counts[name], **meters[name].result()} for name in counts}}
