"""Classifier architectures, building them, loading checkpoints, and picking the device they run on.

Evaluation, feature extraction and training import this module without importing the training loop.
A training's classifier head is `linear` (torchvision's fc without bias, the released checkpoints' format) or
`cosine` (cosine similarity to per-class weights divided by a temperature), optionally after a projector
MLP. Checkpoints always store a torchvision ResNet state_dict: without a projector it includes `fc` as a
bias-free Linear(features, classes) (a cosine head folded into it: weights normalised and divided by the
temperature, which ranks classes exactly as the cosine head does, since the feature norm is a positive
per-image factor); with a projector, `state_dict` is the encoder alone and the head (projector and
classifier) is kept beside it, so that evaluation can still score the trained classifier.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
import torchvision

ARCHS = {"resnet50": torchvision.models.resnet50, "resnet18": torchvision.models.resnet18}


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """`auto` (or None): the GPU if this process sees one, else the CPU; anything else as torch reads it."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def build_model(arch: str, num_classes: int) -> torch.nn.Module:
    """torchvision ResNet from scratch with a bias-free linear classifier, as the paper's released checkpoints."""
    model = ARCHS[arch](weights=None)
    model.fc = torch.nn.Linear(model.fc.in_features, num_classes, bias=False)
    return model


class CosineClassifier(torch.nn.Module):
    """Logits = cos(feature, class weight) / temperature."""

    def __init__(self, in_features: int, num_classes: int, temperature: float):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(num_classes, in_features) / in_features ** 0.5)
        self.temperature = temperature

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(F.normalize(x, dim=1), F.normalize(self.weight, dim=1)) / self.temperature


def build_head(in_features: int, num_classes: int, head: str, temperature: float,
               projector: list[int]) -> torch.nn.Sequential:
    """[projector layers (Linear, BatchNorm, ReLU; the last Linear alone)] + the classifier."""
    layers, width = [], in_features
    for i, out in enumerate(projector):
        layers.append(torch.nn.Linear(width, out))
        if i + 1 < len(projector):
            layers += [torch.nn.BatchNorm1d(out), torch.nn.ReLU(inplace=True)]
        width = out
    if head == "linear":
        layers.append(torch.nn.Linear(width, num_classes, bias=False))
    elif head == "cosine":
        layers.append(CosineClassifier(width, num_classes, temperature))
    else:
        raise ValueError(f"unknown head {head!r} (known: linear, cosine)")
    return torch.nn.Sequential(*layers)


def attach_head(model: torch.nn.Module, training: dict) -> torch.nn.Module:
    """The model as trained: a linear head without projector is the model's own fc; any other head replaces it."""
    if training["head"] == "linear" and not training["projector"]:
        return model
    model.fc = build_head(model.fc.in_features, model.fc.out_features, training["head"], training["temperature"],
                          training["projector"])
    return model


def export_state(model: torch.nn.Module, training: dict) -> tuple[dict, dict | None]:
    """(torchvision state_dict, head state or None) of a model built by attach_head, on the CPU."""
    state = {k: v.detach().to("cpu", memory_format=torch.contiguous_format) for k, v in model.state_dict().items()}
    if training["head"] == "linear" and not training["projector"]:
        return state, None
    head = {k[len("fc."):]: state.pop(k) for k in list(state) if k.startswith("fc.")}
    if training["projector"]:
        return state, head
    classifier = model.fc[-1]
    state["fc.weight"] = (F.normalize(classifier.weight.detach(), dim=1) / classifier.temperature).cpu()
    return state, None


# ---- the multi-crop forward of training ------------------------------------------------------------------
def multicrop_logits(model, crops: list[torch.Tensor]) -> torch.Tensor:
    """One forward per crop resolution (crops of a size batched together), logits in crop order."""
    logits, start = [], 0
    while start < len(crops):
        end = start
        while end < len(crops) and crops[end].shape[-2:] == crops[start].shape[-2:]:
            end += 1
        logits.append(model(torch.cat(crops[start:end])))
        start = end
    return torch.cat(logits)


class MultiCropNet(torch.nn.Module):
    """The model applied to a list of crops (DINO's MultiCropWrapper): one module call per step, which is what
    DistributedDataParallel wraps. `backbone` is the torchvision model, whose state_dict is saved."""

    def __init__(self, backbone: torch.nn.Module):
        super().__init__()
        self.backbone = backbone

    def forward(self, crops: list[torch.Tensor]) -> torch.Tensor:
        return multicrop_logits(self.backbone, crops)


def crops_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of every crop's logits (crop-major) against its image's label, averaged over crops and images."""
    return F.cross_entropy(logits.float(), labels.repeat(len(logits) // len(labels)))


def multicrop_loss(model, crops: list[torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
    return crops_cross_entropy(multicrop_logits(model, crops), labels)


def load_checkpoint_model(path, device: torch.device | str = "cpu"):
    """(model, checkpoint dict) of a checkpoint written by the train rule."""
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    model = build_model(ckpt["arch"], len(ckpt["classes"]))
    if ckpt.get("head_state_dict"):
        model = attach_head(model, ckpt["training"])
        model.fc.load_state_dict(ckpt["head_state_dict"])
        missing, unexpected = model.load_state_dict(ckpt["state_dict"], strict=False)
        if unexpected or any(not k.startswith("fc.") for k in missing):
            raise ValueError(f"{path}: encoder weights do not match {ckpt['arch']}: missing {missing[:5]}, "
                             f"unexpected {unexpected[:5]}")
    else:
        model.load_state_dict(ckpt["state_dict"])
    return model.to(device), ckpt
