"""Classifier architectures, building them, loading checkpoints, and picking the device they run on.

Evaluation, feature extraction and training import this module without importing the training loop.
"""
from __future__ import annotations

import torch
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


def load_checkpoint_model(path, device: torch.device | str = "cpu"):
    """(model, checkpoint dict) of a checkpoint written by the train rule."""
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    model = build_model(ckpt["arch"], len(ckpt["classes"]))
    model.load_state_dict(ckpt["state_dict"])
    return model.to(device), ckpt
