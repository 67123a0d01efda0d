"""The quality step's part of the plan: which CLIP, which clones, and the paths of its per-class jobs.

An embedding file is keyed like the chunks it reads (generator key, recipe key, class key, image count) plus
the CLIP model's key, so clones that share classes share it and a changed class recomputes alone.
"""

from __future__ import annotations

import os

from imagenet_sd import paths
from imagenet_sd.config import ConfigError
from imagenet_sd.planning.clones import Plan
from imagenet_sd.planning.keys import chunk_ranges, short_hash


def enabled(config: dict) -> bool:
    q = config.get("quality", {})
    return bool(q.get("model") or q.get("tiny"))


def clip_key(config: dict) -> str:
    """`clip-<hash>` of what determines the embeddings: the model and its revision, or the tiny CLIP's settings."""
    q = config["quality"]
    return "clip-" + short_hash({"model": q.get("model"), "revision": q.get("revision"), "tiny": q.get("tiny")})


def clip_folder(config: dict) -> str:
    """Where the embedding jobs load CLIP from: the tiny one built here, the user's folder, or the hub copy."""
    q = config["quality"]
    if q.get("tiny"):
        return paths.TINY_CLIP_FOLDER
    if os.path.isdir(q["model"]):
        return q["model"]
    return paths.hub_folder(q["model"], q.get("revision"))


def measured_clones(config: dict, plan: Plan) -> list[str]:
    """The generated clones the quality step measures; errors name a bad `quality` setting."""
    if not enabled(config):
        return []
    q = config["quality"]
    if q.get("model") and q.get("tiny"):
        raise ConfigError("quality: set `model` (a real CLIP) or `tiny` (a random one built locally), not both")
    names = q.get("clones")
    if names is None:
        return [name for name, c in plan.clones.items() if not c.real]
    for name in names:
        if name not in plan.clones:
            raise ConfigError(f"quality.clones: unknown clone {name!r} (known: {', '.join(sorted(plan.clones))})")
        if plan.clones[name].real:
            raise ConfigError(
                f"quality.clones: clone {name!r} is a real clone; the quality step measures generated ones"
            )
    return list(names)


def check_curation(config: dict, plan: Plan) -> None:
    """A curated clone is synthetic and has a CLIP to rank its images with."""
    for name, c in plan.clones.items():
        if not config["clones"][name].get("curation"):
            continue
        if c.real:
            raise ConfigError(
                f"clones.{name}.curation: a real clone is packed as it is; curation is for generated ones"
            )
        if not enabled(config):
            raise ConfigError(f"clones.{name}.curation: needs a CLIP to rank images: set quality.model or quality.tiny")


def class_embeddings(config: dict, plan: Plan, clone: str) -> list[tuple[str, str]]:
    """(wnid, embedding file) of every class of a clone, in class order: all its generated train images."""
    c = plan.clones[clone]
    return [
        (
            e.wnid,
            paths.QUALITY_EMBEDDINGS.format(
                clip_key=clip_key(config),
                generator_key=c.generator_key,
                recipe_key=c.recipe_key,
                ckey=e.key,
                images=c.count("train"),
            ),
        )
        for e in c.classes
    ]


def embedding_chunks(config: dict, plan: Plan, generator_key: str, recipe_key: str, ckey: str, count: int) -> list:
    """The train chunks holding images [0, count) of one class (the generator's chunk size cuts them)."""
    chunk_size = config["generators"][plan.by_generator_key(generator_key)]["chunk_size"]
    return [
        paths.chunk(generator_key, recipe_key, "train", ckey, start, stop)
        for start, stop in chunk_ranges(count, chunk_size)
    ]


def curated(config: dict, plan: Plan) -> dict:
    """Measured curated clone -> its curation settings and images_per_class: its tables describe what it keeps."""
    return {
        name: {**plan.clones[name].curation, "images_per_class": plan.clones[name].images_per_class}
        for name in measured_clones(config, plan)
        if plan.clones[name].curation
    }


def reference_source(config: dict, plan: Plan, clone: str, name: str) -> dict:
    """Which real images a clone is compared with (FD, KID): a real clone's packed train images of each class,
    or every image of an evaluation folder's class folders. Errors name the bad `quality.reference` entry."""
    where = f"quality.reference.{clone}"
    if name in plan.clones and plan.clones[name].real:
        real = plan.clones[name]
        missing = {e.wnid for e in plan.clones[clone].classes} - {e.wnid for e in real.classes}
        if missing:
            raise ConfigError(f"{where}: real clone {name!r} lacks classes {', '.join(sorted(missing)[:10])}")
        source = {"path": os.path.normpath(real.source["path"]), "seed": config["seed"]}
        return source | {"images_per_class": real.images_per_class, "heldout_per_class": real.heldout_per_class}
    evalset = config.get("evalsets", {}).get(name)
    if evalset is None:
        real = sorted(n for n, c in plan.clones.items() if c.real)
        raise ConfigError(
            f"{where}: {name!r} is neither a real clone ({', '.join(real) or 'none'}) "
            f"nor an evalset ({', '.join(sorted(config.get('evalsets', {}))) or 'none'})"
        )
    if "path" not in evalset or evalset.get("layout", "imagefolder") != "imagefolder":
        raise ConfigError(
            f"{where}: evalset {name!r} must be an ImageFolder of real images (`path`, layout imagefolder)"
        )
    if evalset.get("folder_names", "wnid") != "wnid":
        raise ConfigError(f"{where}: evalset {name!r} must name its class folders by wnid")
    return {"path": os.path.normpath(evalset["path"])}


def references(config: dict, plan: Plan) -> dict:
    """Measured clone -> {name, key, source, classes: [(wnid, embedding file of the real images)]}."""
    chosen = config.get("quality", {}).get("reference") or {}
    measured = measured_clones(config, plan)
    out = {}
    for clone, name in chosen.items():
        if clone not in measured:
            raise ConfigError(f"quality.reference: {clone!r} is not a generated clone the quality step measures")
        source = reference_source(config, plan, clone, name)
        key = "ref-" + short_hash(source)
        files = [
            (e.wnid, paths.QUALITY_REFERENCE.format(clip_key=clip_key(config), reference_key=key, wnid=e.wnid))
            for e in plan.clones[clone].classes
        ]
        out[clone] = {"name": name, "key": key, "source": source | {"name": name}, "classes": files}
    return out


def reference_by_key(chosen: dict, key: str) -> dict:
    """The source of a reference embedding job, by the key in its path. `chosen`: what references() gave."""
    for reference in chosen.values():
        if reference["key"] == key:
            return reference["source"]
    raise KeyError(f"no quality.reference has key {key}")


def table_clones(config: dict, plan: Plan, clones: list[str]) -> dict[str, list[tuple[str, str]]]:
    """Per measured clone, (wnid, embedding file) of each of its classes, in class order."""
    return {clone: class_embeddings(config, plan, clone) for clone in clones}


def all_embeddings(config: dict, plan: Plan, clones: list[str], chosen: dict | None = None) -> list[str]:
    """Every embedding file the quality tables read: the measured clones' and, with `chosen` (what
    references() gave), those of their real references (FD, KID)."""
    classes = [*table_clones(config, plan, clones).values(), *(r["classes"] for r in (chosen or {}).values())]
    return sorted({path for pairs in classes for _, path in pairs})


def curation_embeddings(config: dict, plan: Plan, clone: str) -> dict[str, str]:
    """wnid -> CLIP embedding file of a curated clone's classes (pack keeps the best of their images)."""
    if not plan.clones[clone].curation:
        return {}
    return dict(class_embeddings(config, plan, clone))


def embed_inputs(config: dict, plan: Plan, wildcards, clip: str | None) -> dict:
    """The class's train chunks in [0, images), its prompt file (the class name) and the config file of CLIP
    (loaded from folder `clip`). `wildcards`: the job's generator_key, recipe_key, ckey and images."""
    w = wildcards
    return {
        "tars": embedding_chunks(config, plan, w.generator_key, w.recipe_key, w.ckey, int(w.images)),
        "prompts": paths.PROMPTS.format(recipe_key=w.recipe_key, ckey=w.ckey),
        "model": paths.CLIP_CONFIG.format(folder=clip),
    }
