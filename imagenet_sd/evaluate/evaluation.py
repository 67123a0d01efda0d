"""Top-1 / top-5 of a classifier on an ImageFolder evaluation set, scored on the classes both share.

The model's classes and the set's folders are matched by wnid. Logits of model classes the set lacks are
masked out before ranking (timm's --valid-labels), so one function scores a 1000-class model on
ImageNet-R's 200 classes and a 100-class model on its intersection with them; images of folders the model
does not know are not scored. Top-5 ranks among the scored classes only, so with fewer than 5 scored
classes it is top-k with k = the number of scored classes (recorded as `top5_k`; then it is 100%).
Calibration (ECE, NLL) comes from the same masked logits. A set in ImageNet-C's layout
(<corruption>/<severity>/<wnid>/) is scored folder by folder (imagenet_sd.evaluate.corruptions).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torchvision.datasets import ImageFolder

from imagenet_sd.data.images import load_rgb
from imagenet_sd.data.realdata import folder_wnids
from imagenet_sd.paths import WNID_RE
from imagenet_sd.progress import Progress

log = logging.getLogger(__name__)

TOPK = 5
ECE_BINS = 15


@dataclass
class ClassMatch:
    scored: list[str]  # model classes with images in the set, in model order
    model_only: list[str]  # model classes the set has no images of (masked out)
    set_only: list[str]  # folders of the set the model does not know (not scored)

    def mask(self, model_classes: list[str]) -> torch.Tensor:
        scored = set(self.scored)
        return torch.tensor([wnid in scored for wnid in model_classes])


def match_classes(model_classes: list[str], set_classes: list[str]) -> ClassMatch:
    in_set = set(set_classes)
    in_model = set(model_classes)
    return ClassMatch(
        scored=[w for w in model_classes if w in in_set],
        model_only=[w for w in model_classes if w not in in_set],
        set_only=sorted(w for w in set_classes if w not in in_model),
    )


def image_folder(root, model_classes: list[str], transform, naming: str = "wnid") -> tuple[ImageFolder, ClassMatch]:
    """The set's images whose folder is a model class, labelled by the model's class index, decoded as the
    training loader decodes them (imagenet_sd.data.images: CMYK, grayscale, 16-bit and PNG-named-JPEG to RGB)."""
    if not Path(root).is_dir():
        raise FileNotFoundError(
            f"evaluation set folder not found: {root} (set evalsets.<name>.path to an "
            "ImageFolder tree with one sub-folder per wnid, as ImageNet val)"
        )
    dataset = ImageFolder(root, transform=transform, loader=load_rgb, allow_empty=True)
    wnid_of = folder_wnids(dataset.classes, naming)
    dataset.classes = [wnid_of[f] for f in dataset.classes]
    with_images = sorted({dataset.classes[target] for _, target in dataset.samples})
    match = match_classes(model_classes, with_images)
    model_index = {wnid: i for i, wnid in enumerate(model_classes)}
    dataset.samples = [
        (path, model_index[dataset.classes[t]]) for path, t in dataset.samples if dataset.classes[t] in model_index
    ]
    dataset.targets = [t for _, t in dataset.samples]
    dataset.imgs = dataset.samples
    return dataset, match


def topk_correct(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor, ks: tuple[int, ...]) -> list[int]:
    """Per k, how many labels are among the k highest logits of the unmasked classes."""
    logits = logits.float().masked_fill(~mask.to(logits.device), float("-inf"))
    ranked = logits.topk(max(ks), dim=1).indices
    hits = ranked == labels[:, None]
    return [int(hits[:, :k].any(dim=1).sum()) for k in ks]


class Calibration:
    """Expected calibration error and negative log-likelihood, accumulated batch by batch.

    Probabilities are the softmax over the scored classes (masked logits). ECE (Guo et al. 2017): the
    confidence (top probability) falls in one of `bins` equal-width bins ((k-1)/B, k/B]; ECE is the
    image-weighted mean over bins of |accuracy - mean confidence|, a fraction in [0, 1]. NLL is the mean of
    -log p(true class) in nats.
    """

    def __init__(self, bins: int = ECE_BINS):
        self.bins = bins
        self.count = torch.zeros(bins, dtype=torch.float64)
        self.confidence = torch.zeros(bins, dtype=torch.float64)
        self.correct = torch.zeros(bins, dtype=torch.float64)
        self.nll_sum = 0.0

    def update(self, logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> None:
        logp = logits.double().masked_fill(~mask.to(logits.device), float("-inf")).log_softmax(dim=1)
        self.nll_sum -= float(logp.gather(1, labels[:, None].to(logp.device)).sum())
        confidence, predicted = logp.exp().max(dim=1)
        confidence, hit = confidence.cpu(), (predicted.cpu() == labels.cpu()).double()
        which = (confidence * self.bins).ceil().long().clamp(1, self.bins) - 1
        self.count.index_add_(0, which, torch.ones_like(confidence))
        self.confidence.index_add_(0, which, confidence)
        self.correct.index_add_(0, which, hit)

    def result(self) -> dict:
        n = float(self.count.sum())
        if not n:
            return {"ece": float("nan"), "nll": float("nan"), "ece_bins": self.bins}
        gaps = (self.correct - self.confidence).abs().sum()  # sum over bins of n_b |acc_b - conf_b|
        return {"ece": float(gaps) / n, "nll": self.nll_sum / n, "ece_bins": self.bins}


@torch.no_grad()
def score(
    model,
    loader,
    mask: torch.Tensor,
    device: torch.device,
    ks: tuple[int, ...],
    channels_last: bool = False,
    calibration: Calibration | None = None,
) -> tuple[list[int], int]:
    """(correct counts per k, number of images) of `model` over `loader`; `calibration` is fed the logits."""
    model.eval()
    memory_format = torch.channels_last if channels_last else torch.preserve_format
    correct, seen = [0] * len(ks), 0
    progress = Progress("evaluate", len(loader.dataset) if hasattr(loader, "dataset") else None, logger=log)
    for images, labels in loader:
        logits = model(images.to(device, non_blocking=True, memory_format=memory_format))
        for i, c in enumerate(topk_correct(logits, labels.to(device), mask, ks)):
            correct[i] += c
        if calibration is not None:
            calibration.update(logits, labels, mask)
        seen += len(labels)
        progress.update(len(labels))
    progress.finish()
    return correct, seen


def accuracies(correct: list[int], n_images: int, ks: tuple[int, int]) -> dict:
    """top1/top5 in percent (timm's convention), with the counts they come from."""

    def pct(c):
        return 100.0 * c / n_images if n_images else float("nan")

    return {
        "top1": pct(correct[0]),
        "top5": pct(correct[1]),
        "top5_k": ks[1],
        "correct_top1": correct[0],
        "correct_top5": correct[1],
        "n_images": n_images,
    }


def read_class_list(path) -> list[str]:
    """A file of wnids, one per line (blank lines and `#` comments ignored): the classes a set declares."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"class list {path} not found")
    wnids = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
    wnids = [w for w in wnids if w]
    bad = [w for w in wnids if not WNID_RE.match(w)]
    if bad:
        raise ValueError(f"class list {path}: not wnids: {bad[:5]}")
    return wnids


def restrict_to_declared(dataset: ImageFolder, model_classes: list[str], declared: list[str]) -> ClassMatch:
    """Score on the classes the set declares (ImageNet-R's 200, say), whether or not each has images here:
    logits are masked to model classes x declared ones, and images of undeclared folders are not scored."""
    keep = set(declared)
    dataset.samples = [(p, t) for p, t in dataset.samples if model_classes[t] in keep]
    dataset.targets = [t for _, t in dataset.samples]
    dataset.imgs = dataset.samples
    return match_classes(model_classes, declared)


def score_folder(
    model,
    root,
    model_classes: list[str],
    transform,
    *,
    naming: str,
    batch_size: int,
    workers: int,
    device: torch.device,
    channels_last: bool = False,
    declared: list[str] | None = None,
) -> dict:
    """Accuracies, calibration and class match of `model` on one ImageFolder set; `declared`: the set's own
    class list, which masks the logits instead of the folders that happen to hold images."""
    dataset, match = image_folder(root, model_classes, transform, naming=naming)
    if declared is not None:
        match = restrict_to_declared(dataset, model_classes, declared)
    if not match.scored or not dataset.samples:
        raise ValueError(f"evaluation set {root} has no images of the model's classes")
    if match.model_only or match.set_only:
        log.info(
            "%s: scoring %d shared classes: %d model classes absent from the set (masked), "
            "%d set folders unknown to the model (not scored)",
            root,
            len(match.scored),
            len(match.model_only),
            len(match.set_only),
        )
    ks = (1, min(TOPK, len(match.scored)))
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=False, num_workers=workers, pin_memory=device.type == "cuda"
    )
    calibration = Calibration()
    correct, n_images = score(model, loader, match.mask(model_classes), device, ks, channels_last, calibration)
    return {
        **accuracies(correct, n_images, ks),
        **calibration.result(),
        "n_classes_scored": len(match.scored),
        "classes_scored": match.scored,
        "model_classes_missing_from_evalset": match.model_only,
        "evalset_classes_not_in_model": match.set_only,
    }
