"""Classifier architectures, building them, loading checkpoints, and picking the device they run on.

Evaluation, feature extraction and training import this module without importing the training loop.
Two checkpoint formats load here: the train rule's own (a dict with `arch`, `classes`, `state_dict`), and a
plain torchvision state_dict, the format of the paper's released checkpoints (`fc` 2048 -> C without bias)
and of torchvision's own weights (`fc` with bias), whose class order comes from a class sheet.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torchvision

ARCHS = {"resnet50": torchvision.models.resnet50, "resnet18": torchvision.models.resnet18}
# Prefixes that wrappers add to every key (DistributedDataParallel, torch.compile).
WRAPPER_PREFIXES = ("module.", "_orig_mod.")


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """`auto` (or None): the GPU if this process sees one, else the CPU; anything else as torch reads it."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def build_model(arch: str, num_classes: int, fc_bias: bool = False) -> torch.nn.Module:
    """torchvision ResNet from scratch with a linear classifier (bias-free, as the paper's released checkpoints)."""
    model = ARCHS[arch](weights=None)
    model.fc = torch.nn.Linear(model.fc.in_features, num_classes, bias=fc_bias)
    return model


def load_checkpoint_model(path, device: torch.device | str = "cpu"):
    """(model, checkpoint dict) of a checkpoint written by the train rule."""
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    model = build_model(ckpt["arch"], len(ckpt["classes"]))
    model.load_state_dict(ckpt["state_dict"])
    return model.to(device), ckpt


def read_state_dict(path) -> dict[str, torch.Tensor]:
    """The tensors of a torchvision-format checkpoint (also accepted: {'state_dict': ...} / {'model': ...}
    wrappers and DDP / compile key prefixes). Loaded with weights_only: an external file runs no code."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unreadable file gets the same message
        raise ValueError(f"checkpoint {path}: not a readable torch state_dict ({error})") from None
    for wrapper in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(wrapper), dict):
            obj = obj[wrapper]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"checkpoint {path}: expected a dict of tensors (a torchvision state_dict)")
    state = {}
    for key, value in obj.items():
        for prefix in WRAPPER_PREFIXES:
            key = key.removeprefix(prefix)
        state[key] = value
    return state


def state_dict_problems(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> list[str]:
    """Every key the state_dict lacks or has in excess, and every shape that differs, in words."""
    expected = model.state_dict()
    problems = [f"missing key {k}" for k in expected if k not in state]
    problems += [f"unexpected key {k}" for k in state if k not in expected]
    problems += [f"{k}: shape {tuple(state[k].shape)} in the file, {tuple(v.shape)} expected"
                 for k, v in expected.items() if k in state and state[k].shape != v.shape]
    return problems


def load_state_dict_model(path, arch: str, classes: list[str], device: torch.device | str = "cpu"):
    """A torchvision-format checkpoint whose outputs are `classes`, in that order; every key and shape checked."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"checkpoint {path} not found: fetch it on the login node first "
                                f"(`snakemake {path}`), or fix the model's `checkpoint` path")
    state = read_state_dict(path)
    model = build_model(arch, len(classes), fc_bias="fc.bias" in state)
    problems = state_dict_problems(model, state)
    if problems:
        shown = "; ".join(problems[:8]) + (f"; ... ({len(problems)} problems)" if len(problems) > 8 else "")
        raise ValueError(f"checkpoint {path} does not fit a torchvision {arch} with {len(classes)} classes: {shown}")
    model.load_state_dict(state)
    return model.to(device)


def load_model(path, source: str, classes: list[str], arch: str = "resnet50",
               device: torch.device | str = "cpu") -> tuple[torch.nn.Module, dict]:
    """(model, {"classes", "arch", "step"}) of any model of the config: `run` (the train rule's checkpoint,
    whose classes must be `classes` in order) or `state_dict` (a torchvision-format file, outputs in the
    order of `classes`)."""
    if source == "run":
        model, ckpt = load_checkpoint_model(path, device)
        if ckpt["classes"] != list(classes):
            raise ValueError(f"{path} was trained on other classes (or another order) than the run's clone")
        return model, {"classes": ckpt["classes"], "arch": ckpt["arch"], "step": ckpt.get("step")}
    return load_state_dict_model(path, arch, list(classes), device), {"classes": list(classes), "arch": arch,
                                                                       "step": None}


def torchvision_weights(name: str):
    """`ResNet50_Weights.IMAGENET1K_V1` -> the torchvision weights enum member (an error names bad names)."""
    enum_name, _, member = name.partition(".")
    enum = getattr(torchvision.models, enum_name, None)
    if enum is None or not member or member not in getattr(enum, "__members__", {}):
        raise ValueError(f"unknown torchvision weights {name!r} (e.g. ResNet50_Weights.IMAGENET1K_V1)")
    return enum[member]


def feature_extractor(model: torch.nn.Module) -> torch.nn.Module:
    """The same network with its classifier replaced by the identity: forward gives the pooled features."""
    model.fc = torch.nn.Identity()
    return model


def fetch_checkpoint(source: str, dest) -> None:
    """Download a URL, or the file of a torchvision weights name, to `dest` (login node: GPU nodes are offline)."""
    from imagenet_sd.runtime import atomic_path

    url = source if source.startswith(("http://", "https://")) else torchvision_weights(source).url
    with atomic_path(dest) as tmp:
        torch.hub.download_url_to_file(url, str(tmp), progress=False)
