"""What an `adaptations` entry asks for (issue 22): a base pipeline adapted on a real clone's packed train
split, each image captioned by the prompt its class's recipe gives it. Snakemake-free, like every planner.

The adapted pipeline's folder is keyed by everything that determines its weights: the base pipeline (model,
revision, a tiny pipeline's settings), the training images (the real clone's folder and pack settings, its
classes and the global seed that chooses them; not the files' bytes: as for any real clone, a folder whose
files change under the same config is the user's to rename), the recipe's prompt settings, the images per
class and the adaptation's settings with their defaults. A generator that names the adaptation loads from
that folder, and its output key holds the folder's path, so adapting again with other settings writes
beside, never over; generators without `adaptation` keep their keys exactly.

Also which pipeline a generator loads (a tiny one the workflow builds, or an adapted one) and the family the
config declares for it, which the generate job checks against that pipeline.
"""

from __future__ import annotations

import os

from imagenet_sd import paths
from imagenet_sd.config import ConfigError
from imagenet_sd.generate.families import declared_family
from imagenet_sd.planning.keys import short_hash
from imagenet_sd.train.adaptation_settings import adaptation_settings
from imagenet_sd.train.lora import SettingError

# Entry keys that are not adaptation settings (train.adaptation_settings.DEFAULTS) and not in the key as such.
ENTRY_KEYS = ("model", "revision", "clone", "recipe", "images_per_class", "device")


def built_pipeline_of(config: dict, model: str) -> str | None:
    """Name of the `pipelines` entry that the tiny_pipeline rule builds into folder `model`, if any."""
    for name in config.get("pipelines", {}):
        if os.path.normpath(model) == os.path.normpath(paths.PIPELINE_FOLDER.format(pipeline=name)):
            return name
    return None


def built_pipeline_for(config: dict, generator: str) -> str | None:
    g = config["generators"][generator]
    return None if g.get("adaptation") else built_pipeline_of(config, g["model"])


def generator_family(config: dict, generator: str) -> str | None:
    """The family the config declares for a generator (its `family`, its tiny pipeline's, or its hub id's),
    which the config checks assumed: the generate job checks that its pipeline has that architecture."""
    family = declared_family(config, generator, built_pipeline_for(config, generator))
    return family.name if family else None


def trained_settings(spec: dict) -> dict:
    """The entry's adaptation settings with their defaults, less `save_every` (saving changes no weight);
    `lora` only when set (a full fine-tuning's key is the one it had before LoRA existed)."""
    settings = adaptation_settings({k: v for k, v in spec.items() if k not in ENTRY_KEYS})
    return {k: v for k, v in settings.items() if k != "save_every"}


def adaptation_identity(plan, name: str) -> dict:
    """Everything that determines the adapted weights (see the module's docstring)."""
    config = plan.config
    spec = config["adaptations"][name]
    built = built_pipeline_of(config, spec["model"])
    clone = plan.clones[spec["clone"]]
    return {
        "base": {
            "model": spec["model"],
            "revision": spec.get("revision"),
            "pipeline": config["pipelines"][built] if built else None,
        },
        "images": {
            "source": clone.source,
            "classes": [e.key for e in clone.classes],
            "clone_images_per_class": clone.images_per_class,
            "heldout_per_class": clone.heldout_per_class,
            "seed": config["seed"],
        },
        "prompts": plan.prompt_settings(spec["recipe"]),
        "images_per_class": spec.get("images_per_class"),
        "settings": trained_settings(spec),
    }


def adaptation_key(plan, name: str) -> str:
    return f"{name}-{short_hash(adaptation_identity(plan, name))}"


def adapted_folder(plan, name: str) -> str:
    return paths.ADAPTED_FOLDER.format(adaptation_key=adaptation_key(plan, name))


def card_entry(plan, name: str) -> dict:
    """What a dataset card records of the adaptation behind a clone's generator."""
    spec = plan.config["adaptations"][name]
    return {
        "name": name,
        "key": adaptation_key(plan, name),
        "entry": {"revision": None, **spec},
        "images_license": plan.config["clones"][spec["clone"]].get("license"),
    }


def by_adaptation_key(plan, key: str) -> str:
    for name in plan.config.get("adaptations", {}):
        if adaptation_key(plan, name) == key:
            return name
    raise KeyError(f"no adaptation in the config has key {key}")


def adaptation_prompt_files(plan, name: str) -> list[str]:
    """The recipe's prompt file of each class of the real clone, in class order (the label order)."""
    spec = plan.config["adaptations"][name]
    recipe_key = plan.recipe_key(spec["recipe"])
    return [paths.PROMPTS.format(recipe_key=recipe_key, ckey=e.key) for e in plan.clones[spec["clone"]].classes]


def check_adaptations(plan, need) -> None:
    """Each adaptation names a real clone and a recipe; each generator's `adaptation` names an entry."""
    config = plan.config
    for name, spec in config.get("adaptations", {}).items():
        need(config, "clones", spec["clone"], f"adaptations.{name}.clone")
        need(config, "recipes", spec["recipe"], f"adaptations.{name}.recipe")
        if "path" not in config["clones"][spec["clone"]]:  # checked before the synthetic clones are planned
            raise ConfigError(
                f"adaptations.{name}.clone: {spec['clone']!r} is a synthetic clone; an adaptation learns from a "
                "real one (a clone with `path:`)"
            )
        try:
            trained_settings(spec)
        except SettingError as e:  # names its key within the entry: adaptations.<name>.lora.rank
            raise ConfigError(f"adaptations.{name}.{e}") from None
        except ValueError as e:
            raise ConfigError(f"adaptations.{name}: {e}") from None
    for name, g in config.get("generators", {}).items():
        if g.get("adaptation"):
            need(config, "adaptations", g["adaptation"], f"generators.{name}.adaptation")


# ---- pipeline folders the jobs load -------------------------------------------------------------------
def pipeline_folder(config: dict, model: str, revision: str | None) -> str:
    """The local folder of a pipeline `model`: built here, the user's own, or prefetched from the hub."""
    built = built_pipeline_of(config, model)
    if built:
        return paths.PIPELINE_FOLDER.format(pipeline=built)
    if os.path.isdir(model):
        return model
    return paths.hub_folder(model, revision)


def model_folder(plan, generator: str) -> str:
    """The local folder a generator's pipeline loads from: adapted here, or its model's (pipeline_folder)."""
    spec = plan.config["generators"][generator]
    if spec.get("adaptation"):
        return adapted_folder(plan, spec["adaptation"])
    return pipeline_folder(plan.config, spec["model"], spec["revision"])


def adaptation_inputs(plan, key: str) -> dict:
    """The base pipeline's model_index.json, the real clone's train shards and the prompt files."""
    name = by_adaptation_key(plan, key)
    spec = plan.config["adaptations"][name]
    return {
        "base": paths.model_index(pipeline_folder(plan.config, spec["model"], spec["revision"])),
        "index": paths.SHARD_INDEX.format(clone=spec["clone"]),
        "shards": paths.SHARDS.format(clone=spec["clone"]),
        "prompts": adaptation_prompt_files(plan, name),
    }


def adaptation_params(plan, key: str) -> dict:
    """What the job needs besides its inputs; its settings are those in the key (no runtime setting)."""
    name = by_adaptation_key(plan, key)
    spec = plan.config["adaptations"][name]
    return {
        "adaptation": name,
        "base_dir": pipeline_folder(plan.config, spec["model"], spec["revision"]),
        "classes": [e.wnid for e in plan.clones[spec["clone"]].classes],
        "images_per_class": spec.get("images_per_class"),
        "settings": trained_settings(spec),
        "folder": paths.ADAPTED_FOLDER.format(adaptation_key=key),
    }
