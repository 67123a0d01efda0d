"""The models of a config and their evaluation: a model's checkpoint, classes and the sets it is evaluated
and probed on, the settings its evaluation reads, and the paths of its results.

A model is a run of this workflow (its checkpoint) or an entry of `models` (an external torchvision-format
checkpoint, or torchvision weights by name). Every path is keyed by what determines its content; Snakemake's
rules call in here.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from imagenet_sd import paths
from imagenet_sd.config import ConfigError, job_params, schema_defaults
from imagenet_sd.planning.clones import Plan
from imagenet_sd.planning.keys import short_hash
from imagenet_sd.report.references import check_published_as

WEIGHTS_RE = re.compile(r"^[A-Za-z0-9]+_Weights\.[A-Z0-9_]+$")
ARCH_OF_WEIGHTS = {"ResNet50_Weights": "resnet50", "ResNet18_Weights": "resnet18"}


@dataclass(frozen=True)
class Model:
    name: str
    source: str  # "run" (the train rule's checkpoint) or "state_dict" (torchvision format)
    checkpoint: str  # the file jobs load
    fetch: str | None  # URL or torchvision weights name the local rule fetches into `checkpoint`
    arch: str
    classes: tuple[str, ...]  # wnids in output order
    synthetic: bool  # trained on synthetic images only
    evaluate: tuple[str, ...]
    transfer: tuple[str, ...]
    eval_resolution: int | None  # None: the run's training recipe says


def fetched_path(spec: dict) -> str | None:
    """Where the local fetch rule stores a URL or a weights name: keyed by the URL / name itself."""
    if "weights" in spec:
        return f"resources/models/torchvision/{spec['weights']}.pth"
    url = spec["checkpoint"]
    if re.match(r"^https?://", url):
        return f"resources/models/url/{short_hash(url)}/{os.path.basename(url.split('?')[0]) or 'checkpoint.pth'}"
    return None


def transfer_names(config: dict, listed, where: str) -> tuple[str, ...]:
    sets = config.get("transfer_sets", {})
    names = tuple(sets) if listed == "all" else tuple(listed or ())
    for name in names:
        if name not in sets:
            raise ConfigError(f"{where}: unknown transfer set {name!r} (known: {', '.join(sorted(sets)) or 'none'})")
    return names


def external_model(config: dict, plan: Plan, name: str, spec: dict) -> Model:
    where = f"models.{name}"
    if spec["class_set"] not in plan.sheets:
        raise ConfigError(f"{where}.class_set: unknown class set {spec['class_set']!r}")
    arch = spec.get("arch", "resnet50")
    fetch = spec.get("weights") or spec.get("checkpoint")
    if "weights" in spec:
        if not WEIGHTS_RE.match(spec["weights"]):
            raise ConfigError(
                f"{where}.weights: {spec['weights']!r} is not a torchvision weights name "
                "like ResNet50_Weights.IMAGENET1K_V1"
            )
        weights_arch = ARCH_OF_WEIGHTS.get(spec["weights"].split(".")[0])
        if weights_arch != arch:
            raise ConfigError(f"{where}.weights: {spec['weights']} are not weights of arch {arch}")
    check_published_as(where, spec)
    path = fetched_path(spec)
    if path is None:
        fetch, path = None, spec["checkpoint"]
        if not os.path.isfile(path):
            raise ConfigError(f"{where}.checkpoint: file {path} not found")
    for ev in spec.get("evaluate", []):
        if ev not in config.get("evalsets", {}):
            raise ConfigError(f"{where}.evaluate: unknown evalset {ev!r}")
    return Model(
        name,
        "state_dict",
        path,
        fetch,
        arch,
        tuple(e.wnid for e in plan.sheets[spec["class_set"]]),
        bool(spec.get("synthetic", False)),
        tuple(spec.get("evaluate", [])),
        transfer_names(config, spec.get("transfer"), f"{where}.transfer"),
        spec.get("eval_resolution", 224),
    )


def build_models(config: dict, plan: Plan) -> dict[str, Model]:
    """Every model of the config by name: runs first, then `models` entries. Raises ConfigError naming the culprit."""
    models = {}
    for name, run in config.get("runs", {}).items():
        models[name] = Model(
            name,
            "run",
            paths.CHECKPOINT.format(run=name),
            None,
            config["trainings"][run["training"]].get("arch", "resnet50"),
            tuple(e.wnid for e in plan.clones[run["clone"]].classes),
            not plan.clones[run["clone"]].real,
            tuple(run.get("evaluate", [])),
            transfer_names(config, run.get("transfer"), f"runs.{name}.transfer"),
            None,
        )
    for name, spec in config.get("models", {}).items():
        if name in models:
            raise ConfigError(
                f"models.{name} and runs.{name} share a name: a run is a model of the same name, rename one of them"
            )
        models[name] = external_model(config, plan, name, spec)
    return models


def evalset_folder(config: dict, evalset: str) -> str:
    """Folder of an evaluation set: a clone's held-out split (built here) or the user's real images."""
    spec = config["evalsets"][evalset]
    return paths.HELDOUT.format(clone=spec["clone"]) if "clone" in spec else spec["path"]


def evalset_input(config: dict, evalset: str) -> str | list:
    """Only held-out splits are DAG inputs; real datasets are external and are checked by the job itself."""
    return evalset_folder(config, evalset) if "clone" in config["evalsets"][evalset] else []


def model_eval_training(config: dict, model: Model) -> dict:
    """Evaluation settings: a run's training recipe; for an external model, its arch and eval resolution."""
    if model.source == "run":
        return job_params("trainings", config["trainings"][config["runs"][model.name]["training"]])
    return {"arch": model.arch, "eval_resolution": model.eval_resolution}


def model_eval_resolution(config: dict, model: Model) -> int:
    return model_eval_training(config, model).get("eval_resolution", schema_defaults("trainings")["eval_resolution"])


def evalset_resize(evalset: dict) -> bool:
    """Whether a set's images are resized before the centre crop: its `resize`, or by default yes for an
    ImageFolder set (photographs of any size: the standard ImageNet protocol) and no for a corruption set
    (ImageNet-C is stored at 224 x 224 and Hendrycks and Dietterich only centre-crop it; a resize to 256 would
    zoom it 1.14x and smooth the noise corruptions, making them easier)."""
    resize = evalset.get("resize")
    return evalset.get("layout", "imagefolder") != "corruptions" if resize is None else bool(resize)


def scoring_spec(evalset: dict) -> dict:
    """What evaluate and attack jobs read of an evaluation set (their params): not its labels (`description`,
    `kind`), whose edits rerun nothing, and `resize` resolved."""
    scoring = {k: v for k, v in evalset.items() if k not in ("description", "kind", "resize")}
    resize = evalset_resize(evalset)
    # Resizing ImageFolder sets is what every evaluation did before `resize` existed: left implicit there, so
    # their params, and so their results, stay as they were; a corruption set's results changed with it.
    if resize and scoring.get("layout", "imagefolder") == "imagefolder":
        return scoring
    return {**scoring, "resize": resize}


def evaluation_outputs(models: dict[str, Model]) -> list[str]:
    return [paths.EVALUATION.format(model=m.name, evalset=ev) for m in models.values() for ev in m.evaluate]
