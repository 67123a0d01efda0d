"""Top-1 / top-5 of a classifier on an ImageFolder evaluation set, scored on the classes both share.

The model's classes and the set's folders are matched by wnid. Logits of model classes the set lacks are
masked out before ranking (timm's --valid-labels), so one function scores a 1000-class model on
ImageNet-R's 200 classes and a 100-class model on its intersection with them; images of folders the model
does not know are not scored. Top-5 ranks among the scored classes only, so with fewer than 5 scored
classes it is top-k with k = the number of scored classes (recorded as `top5_k`; then it is 100%).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torchvision.datasets import ImageFolder

log = logging.getLogger(__name__)

TOPK = 5
IMAGENET1K_SYNSETS = Path(__file__).resolve().parents[1] / "data/imagenet1k_synsets.tsv"


def folder_wnids(folders: list[str], naming: str) -> dict[str, str]:
    """Folder name -> wnid. `wnid`: the folders are wnids (ImageNet val, Sketch, R, A). `imagenet1k_index`:
    the folders are ImageNet-1K class indices 0..999 in the standard sorted-wnid order (ImageNetV2)."""
    if naming == "wnid":
        return {f: f for f in folders}
    rows = IMAGENET1K_SYNSETS.read_text().splitlines()[1:]
    by_index = {line.split("\t")[0]: line.split("\t")[1] for line in rows}
    unknown = [f for f in folders if f not in by_index]
    if unknown:
        raise ValueError(f"folders named by ImageNet-1K class index must be 0..999; got {unknown[:5]}")
    return {f: by_index[f] for f in folders}


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
    return ClassMatch(scored=[w for w in model_classes if w in in_set],
                      model_only=[w for w in model_classes if w not in in_set],
                      set_only=sorted(w for w in set_classes if w not in in_model))


def image_folder(root, model_classes: list[str], transform, naming: str = "wnid") -> tuple[ImageFolder, ClassMatch]:
    """The set's images whose folder is a model class, labelled by the model's class index."""
    if not Path(root).is_dir():
        raise FileNotFoundError(f"evaluation set folder not found: {root} (set evalsets.<name>.path to an "
                                "ImageFolder tree with one sub-folder per wnid, as ImageNet val)")
    dataset = ImageFolder(root, transform=transform, allow_empty=True)
    wnid_of = folder_wnids(dataset.classes, naming)
    dataset.classes = [wnid_of[f] for f in dataset.classes]
    with_images = sorted({dataset.classes[target] for _, target in dataset.samples})
    match = match_classes(model_classes, with_images)
    model_index = {wnid: i for i, wnid in enumerate(model_classes)}
    dataset.samples = [(path, model_index[dataset.classes[t]]) for path, t in dataset.samples
                       if dataset.classes[t] in model_index]
    dataset.targets = [t for _, t in dataset.samples]
    dataset.imgs = dataset.samples
    return dataset, match


def topk_correct(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor, ks: tuple[int, ...]) -> list[int]:
    """Per k, how many labels are among the k highest logits of the unmasked classes."""
    logits = logits.float().masked_fill(~mask.to(logits.device), float("-inf"))
    ranked = logits.topk(max(ks), dim=1).indices
    hits = ranked == labels[:, None]
    return [int(hits[:, :k].any(dim=1).sum()) for k in ks]


@torch.no_grad()
def score(model, loader, mask: torch.Tensor, device: torch.device, ks: tuple[int, ...],
          channels_last: bool = False) -> tuple[list[int], int]:
    """(correct counts per k, number of images) of `model` over `loader`."""
    model.eval()
    memory_format = torch.channels_last if channels_last else torch.preserve_format
    correct, seen = [0] * len(ks), 0
    for images, labels in loader:
        logits = model(images.to(device, non_blocking=True, memory_format=memory_format))
        for i, c in enumerate(topk_correct(logits, labels.to(device), mask, ks)):
            correct[i] += c
        seen += len(labels)
    return correct, seen


def accuracies(correct: list[int], n_images: int, ks: tuple[int, int]) -> dict:
    """top1/top5 in percent (timm's convention), with the counts they come from."""
    def pct(c):
        return 100.0 * c / n_images if n_images else float("nan")

    return {"top1": pct(correct[0]), "top5": pct(correct[1]), "top5_k": ks[1],
            "correct_top1": correct[0], "correct_top5": correct[1], "n_images": n_images}
