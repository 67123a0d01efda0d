"""Classifier architectures, building them, and loading checkpoints.

Evaluation, feature extraction and training import this module without importing the training loop.
Two checkpoint formats load here: the train rule's own (a dict with `arch`, `classes`, `state_dict`), and a
plain torchvision state_dict, the format of the paper's released checkpoints (`fc` 2048 -> C without bias)
and of torchvision's own weights (`fc` with bias), whose class order comes from a class sheet.
A training's classifier head is `linear` (torchvision's fc without bias, the released checkpoints' format) or
`cosine` (cosine similarity to per-class weights divided by a temperature), optionally after a projector
MLP. Checkpoints always store a torchvision ResNet state_dict: without a projector it includes `fc` as a
bias-free Linear(features, classes) (a cosine head folded into it: weights normalised and divided by the
temperature, which ranks classes as the cosine head does but multiplies its logits by the feature norm, so
it is only the export for a plain torchvision ResNet); with a projector, `state_dict` is the encoder alone
and the head (projector and classifier) is kept beside it. Loading a checkpoint rebuilds the head it was
trained with from its `training` settings (head, temperature, projector): every consumer scores the trained
classifier, whose softmax (calibration, attack gradients) is the one trained, not a sharper one.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision

ARCHS = {"resnet50": torchvision.models.resnet50, "resnet18": torchvision.models.resnet18}
# Prefixes that wrappers add to every key (DistributedDataParallel, torch.compile).
WRAPPER_PREFIXES = ("module.", "_orig_mod.")


def build_model(arch: str, num_classes: int, fc_bias: bool = False) -> torch.nn.Module:
    """torchvision ResNet from scratch with a linear classifier (bias-free, as the paper's released checkpoints)."""
    model = ARCHS[arch](weights=None)
    model.fc = torch.nn.Linear(model.fc.in_features, num_classes, bias=fc_bias)
    return model


class CosineClassifier(torch.nn.Module):
    """Logits = cos(feature, class weight) / temperature."""

    def __init__(self, in_features: int, num_classes: int, temperature: float):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(num_classes, in_features) / in_features**0.5)
        self.temperature = temperature

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(F.normalize(x, dim=1), F.normalize(self.weight, dim=1)) / self.temperature


def build_head(
    in_features: int, num_classes: int, head: str, temperature: float, projector: list[int]
) -> torch.nn.Sequential:
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
    model.fc = build_head(
        model.fc.in_features, model.fc.out_features, training["head"], training["temperature"], training["projector"]
    )
    return model


def export_state(model: torch.nn.Module, training: dict) -> tuple[dict, dict | None]:
    """(torchvision state_dict, head state or None) of a model built by attach_head, on the CPU."""
    state = {k: v.detach().to("cpu", memory_format=torch.contiguous_format) for k, v in model.state_dict().items()}
    if training["head"] == "linear" and not training["projector"]:
        return state, None
    head = {k[len("fc.") :]: state.pop(k) for k in list(state) if k.startswith("fc.")}
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


def trained_head(ckpt: dict) -> dict:
    """{head, temperature, projector} a train-rule checkpoint was trained with: its `training` settings
    (checkpoints from before heads existed had the linear one)."""
    t = ckpt.get("training") or {}
    return {"head": t.get("head", "linear"), "temperature": t.get("temperature"), "projector": t.get("projector") or []}


def unfold_cosine(model: torch.nn.Module, head: dict) -> torch.nn.Module:
    """The cosine head back from the fc it was folded into: fc's rows are the class weights' directions
    (divided by the temperature), and directions are all a cosine head uses."""
    folded = model.fc.weight.detach().clone()
    model = attach_head(model, head)
    with torch.no_grad():
        model.fc[-1].weight.copy_(folded)
    return model


def load_checkpoint_model(path, device: torch.device | str = "cpu"):
    """(model with the head it was trained with, checkpoint dict) of a checkpoint written by the train rule."""
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    model = build_model(ckpt["arch"], len(ckpt["classes"]))
    head = trained_head(ckpt)
    if ckpt.get("head_state_dict"):
        model = attach_head(model, head)
        model.fc.load_state_dict(ckpt["head_state_dict"])
        missing, unexpected = model.load_state_dict(ckpt["state_dict"], strict=False)
        if unexpected or any(not k.startswith("fc.") for k in missing):
            raise ValueError(
                f"{path}: encoder weights do not match {ckpt['arch']}: missing {missing[:5]}, "
                f"unexpected {unexpected[:5]}"
            )
    else:
        model.load_state_dict(ckpt["state_dict"])
        if head["head"] != "linear":
            model = unfold_cosine(model, head)
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
    problems += [
        f"{k}: shape {tuple(state[k].shape)} in the file, {tuple(v.shape)} expected"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    return problems


def load_state_dict_model(path, arch: str, classes: list[str], device: torch.device | str = "cpu"):
    """A torchvision-format checkpoint whose outputs are `classes`, in that order; every key and shape checked."""
    if not Path(path).is_file():
        raise FileNotFoundError(
            f"checkpoint {path} not found: fetch it on the login node first "
            f"(`snakemake {path}`), or fix the model's `checkpoint` path"
        )
    state = read_state_dict(path)
    model = build_model(arch, len(classes), fc_bias="fc.bias" in state)
    problems = state_dict_problems(model, state)
    if problems:
        shown = "; ".join(problems[:8]) + (f"; ... ({len(problems)} problems)" if len(problems) > 8 else "")
        raise ValueError(f"checkpoint {path} does not fit a torchvision {arch} with {len(classes)} classes: {shown}")
    model.load_state_dict(state)
    return model.to(device)


def load_model(
    path, source: str, classes: list[str], arch: str = "resnet50", device: torch.device | str = "cpu"
) -> tuple[torch.nn.Module, dict]:
    """(model, {"classes", "arch", "step"}) of any model of the config: `run` (the train rule's checkpoint,
    whose classes must be `classes` in order) or `state_dict` (a torchvision-format file, outputs in the
    order of `classes`)."""
    if source == "run":
        model, ckpt = load_checkpoint_model(path, device)
        if ckpt["classes"] != list(classes):
            raise ValueError(f"{path} was trained on other classes (or another order) than the run's clone")
        return model, {"classes": ckpt["classes"], "arch": ckpt["arch"], "step": ckpt.get("step")}
    return load_state_dict_model(path, arch, list(classes), device), {
        "classes": list(classes),
        "arch": arch,
        "step": None,
    }


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
