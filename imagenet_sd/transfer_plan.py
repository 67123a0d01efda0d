"""Models and datasets of a config for evaluation, features and probes: names, checks and output paths.

A model is a run of this workflow (its checkpoint) or an entry of `models` (an external torchvision-format
checkpoint, or torchvision weights by name). A dataset of the features rule is a `transfer_sets` entry or an
`evalsets` entry. Every path is keyed by what determines its content; Snakemake's rules call in here.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from imagenet_sd import paths
from imagenet_sd.config import schema_defaults
from imagenet_sd.data.transfer_sets import UNSPLIT_TORCHVISION
from imagenet_sd.plan import ConfigError, Plan, short_hash
from imagenet_sd.report.references import check_published_as

WEIGHTS_RE = re.compile(r"^[A-Za-z0-9]+_Weights\.[A-Z0-9_]+$")
ARCH_OF_WEIGHTS = {"ResNet50_Weights": "resnet50", "ResNet18_Weights": "resnet18"}
TRANSFER_SPLITS = ("train", "test")
EVALSET_SPLITS = ("test",)
PREPARED = ("torchvision", "digits")  # sources a local rule materialises under resources/transfer/


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


def check_datasets(config: dict) -> list[str]:
    """Config errors of the dataset namespace; returns warnings (folders that do not exist yet)."""
    sets, evalsets = config.get("transfer_sets", {}), config.get("evalsets", {})
    clash = sorted(set(sets) & set(evalsets))
    if clash:
        raise ConfigError(
            f"transfer_sets.{clash[0]} and evalsets.{clash[0]} share a name: features are keyed by "
            "dataset name, rename one of them"
        )
    warnings = []
    for name, spec in sets.items():
        source = spec.get("source", "folder")
        if source == "folder" and not spec.get("path"):
            raise ConfigError(f"transfer_sets.{name}: source `folder` needs a `path`")
        if source == "torchvision" and not spec.get("dataset"):
            raise ConfigError(f"transfer_sets.{name}: source `torchvision` needs `dataset` (e.g. DTD)")
        if source == "folder" and not os.path.isdir(spec["path"]):
            warnings.append(
                f"transfer_sets.{name}.path: folder {spec['path']} does not exist yet; its features "
                "jobs will fail until it holds the images (docs/transfer.md says what to fetch)"
            )
    return warnings


def dataset_splits(config: dict, dataset: str) -> tuple[str, ...]:
    if dataset in config.get("transfer_sets", {}):
        return TRANSFER_SPLITS
    if dataset in config.get("evalsets", {}):
        return EVALSET_SPLITS
    raise KeyError(f"unknown dataset {dataset!r}: neither a transfer set nor an evaluation set")


def dataset_root(config: dict, dataset: str) -> str:
    """The folder a dataset's index reads: prepared here, a clone's held-out split, or the user's folder."""
    spec = config.get("transfer_sets", {}).get(dataset)
    if spec is not None:
        return f"resources/transfer/{dataset}" if spec.get("source", "folder") in PREPARED else spec["path"]
    return evalset_folder(config, dataset)


def evalset_folder(config: dict, evalset: str) -> str:
    """Folder of an evaluation set: a clone's held-out split (built here) or the user's real images."""
    spec = config["evalsets"][evalset]
    return paths.HELDOUT.format(clone=spec["clone"]) if "clone" in spec else spec["path"]


def evalset_input(config: dict, evalset: str) -> str | list:
    """Only held-out splits are DAG inputs; real datasets are external and are checked by the job itself."""
    return evalset_folder(config, evalset) if "clone" in config["evalsets"][evalset] else []


def dataset_index_inputs(config: dict, dataset: str, part: str) -> list[str]:
    """Prepared lists, clone held-out splits and an evaluation set's class list are DAG inputs; user folders
    are read (and checked) by the job."""
    if dataset in config["transfer_sets"]:
        root = dataset_root(config, dataset)
        return [f"{root}/{part}.tsv"] if root.startswith("resources/transfer/") else []
    spec = config["evalsets"][dataset]
    return ([evalset_folder(config, dataset)] if "clone" in spec else []) + (
        [spec["classes"]] if spec.get("classes") else []
    )


def transfer_set_spec(config: dict, dataset: str) -> dict:
    """The settings that determine a prepared set's files (not its table group, description or probe)."""
    spec = config["transfer_sets"][dataset]
    return {k: spec.get(k) for k in ("source", "dataset", "image_size", "test_fraction") if k in spec}


def model_eval_training(config: dict, model: Model) -> dict:
    """Evaluation settings: a run's training recipe; for an external model, its arch and eval resolution."""
    if model.source == "run":
        return config["trainings"][config["runs"][model.name]["training"]]
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


def index_settings(config: dict, dataset: str) -> dict:
    """How build_index reads a dataset's folder (layout, split locations, folder naming, an evaluation set's
    class list)."""
    spec = config.get("transfer_sets", {}).get(dataset)
    if spec is None:
        evalset = config["evalsets"][dataset]
        settings = {
            "layout": "imagefolder",
            "splits": {"test": ""},
            "folder_names": evalset.get("folder_names", "wnid"),
        }
        # A set's declared classes bound its index (ImageNet-100 val out of the whole val folder); a set without
        # them keeps the settings, so the index, and features, that it had before `classes` counted here.
        return {**settings, "classes": evalset["classes"]} if evalset.get("classes") else settings
    if spec.get("source", "folder") in PREPARED:
        return {"layout": "lists", "splits": {}, "folder_names": "wnid"}
    return {"layout": spec.get("layout", "imagefolder"), "splits": spec.get("splits", {}), "folder_names": "wnid"}


def index_path(dataset: str, split: str) -> str:
    return paths.DATASET_INDEX.format(dataset=dataset, part=split)


def preprocessing_key(config: dict) -> str:
    return f"prep-{short_hash(config['transfer']['preprocessing'])}"


def features_path(config: dict, model: str, dataset: str, split: str) -> str:
    return paths.FEATURES.format(model=model, prep_key=preprocessing_key(config), dataset=dataset, part=split)


def probe_kind(config: dict, dataset: str) -> str:
    return config["transfer_sets"][dataset].get("probe", "logistic")


def drawn_test_fraction(config: dict, dataset: str) -> float | None:
    """A set with no official split (digits, EuroSAT): the fraction of each class its probes test on, each
    seed drawing its own test split from the images of both prepared lists. None: the set's own split."""
    spec = config["transfer_sets"][dataset]
    source = spec.get("source", "folder")
    if source == "digits" or (source == "torchvision" and spec.get("dataset") in UNSPLIT_TORCHVISION):
        return spec.get("test_fraction", 0.3)
    return None


def probe_seeds(config: dict, dataset: str) -> list[int]:
    """Split seeds of a set's probes: its own `seeds`, else `transfer.seeds`."""
    return config["transfer_sets"][dataset].get("seeds") or config["transfer"]["seeds"]


def probe_hash(config: dict, dataset: str) -> str:
    """What determines a probe's result besides model, dataset and seed: features, search and fit settings,
    and for a set with no official split the test fraction each seed draws (the probe reads it from the
    config, not from a rule param, so that the keys and params of every other set's probes stay as they were)."""
    transfer, kind = config["transfer"], probe_kind(config, dataset)
    settings = {
        "preprocessing": transfer["preprocessing"],
        "val_fraction": transfer["val_fraction"],
        kind: transfer[kind],
    }
    drawn = drawn_test_fraction(config, dataset)
    if drawn is not None:
        settings["test_split"] = {"fraction": drawn, "drawn": "per seed"}
    return short_hash(settings)


def probe_path(config: dict, model: str, dataset: str, seed: int) -> str:
    return paths.PROBE.format(
        model=model,
        dataset=dataset,
        kind=probe_kind(config, dataset),
        probe_hash=probe_hash(config, dataset),
        seed=seed,
    )


def probe_outputs(config: dict, models: dict[str, Model]) -> list[str]:
    return [
        probe_path(config, m.name, d, seed)
        for m in models.values()
        for d in m.transfer
        for seed in probe_seeds(config, d)
    ]


def evaluation_outputs(models: dict[str, Model]) -> list[str]:
    return [paths.EVALUATION.format(model=m.name, evalset=ev) for m in models.values() for ev in m.evaluate]
