"""Datasets of the features rule and the linear probes on them: which splits a dataset has, the folder and
settings its index reads, and the paths of its index, features and probes.

A dataset is a `transfer_sets` entry (a folder, or a set a local rule prepares) or an `evalsets` entry (whose
folder imagenet_sd.planning.models gives). Every path is keyed by what determines its content; Snakemake's
rules call in here.
"""

from __future__ import annotations

import os

from imagenet_sd import paths
from imagenet_sd.config import ConfigError
from imagenet_sd.data.transfer_sets import UNSPLIT_TORCHVISION
from imagenet_sd.planning.keys import short_hash
from imagenet_sd.planning.models import Model, evalset_folder

TRANSFER_SPLITS = ("train", "test")
EVALSET_SPLITS = ("test",)
PREPARED = ("torchvision", "digits")  # sources a local rule materialises under resources/transfer/


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
